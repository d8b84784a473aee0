"""Azure Functions entry point (v2 programming model). Thin: the work is in triage/."""

import azure.functions as func

app = func.FunctionApp()
