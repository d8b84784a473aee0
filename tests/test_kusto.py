"""The .kql files through Microsoft's own Kusto parser and analyzer (npm
@kusto/language-service-next, pinned in package.json): duckdb-kql runs them here, but Log
Analytics is what must accept them. Raw as an analyst pastes them, and bound as the tool
sends them, for every selector kind and hostile values."""

import json
import subprocess
from dataclasses import fields, replace
from datetime import datetime, timezone

import pytest

from conftest import ROOT
from triage import query
from triage.incident import DeviceSelector
from triage.result import Connection
from triage.window import Window

CHECKER = ROOT / "tests" / "contracts" / "kusto_check.js"
PACKAGE = ROOT / "node_modules" / "@kusto" / "language-service-next"
# The Log Analytics schema of the columns the queries read (Defender's advanced hunting
# names the time column Timestamp, as the files' headers say); IPAddresses is dynamic in
# Log Analytics and text in Defender's exports, and todynamic() takes either.
EVENTS = ("(TimeGenerated:datetime, DeviceId:string, DeviceName:string, ActionType:string, RemoteIP:string, "
          "RemotePort:int, RemoteUrl:string, InitiatingProcessFileName:string, InitiatingProcessAccountName:string, "
          "InitiatingProcessAccountSid:string, InitiatingProcessAccountUpn:string)")
INFO = "(TimeGenerated:datetime, DeviceId:string, DeviceName:string, IPAddresses:{})"
HOSTILE = 'ws01"|take 1//\\'
WINDOW = Window(datetime(2026, 3, 7, 13, tzinfo=timezone.utc), datetime(2026, 3, 10, 14, 0, 0, 123456, tzinfo=timezone.utc))


def analyse(queries: dict[str, str], ip_addresses: str) -> dict[str, dict]:
    if not PACKAGE.exists():
        raise RuntimeError(f"{PACKAGE} is missing: run `make install` (npm ci) first")
    tables = {"DeviceNetworkEvents": EVENTS, "DeviceNetworkInfo": INFO.format(ip_addresses)}
    proc = subprocess.run(["node", str(CHECKER)], input=json.dumps({"tables": tables, "queries": queries}),
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return json.loads(proc.stdout)


def texts() -> dict[str, str]:
    """Each file as it is, and as bound for each selector kind, with and without the term index."""
    out = {name: query.template(name) for name in (query.LATERAL_MOVEMENT, query.MATCHED_DEVICES,
                                                    query.FAILED_CONNECTIONS, query.BASELINE)}
    for kind, value in (("hostname", "ws01"), ("fqdn", HOSTILE), ("deviceId", "ab12cd34ef")):
        for term_index in (True, False):
            p = query.Parameters(DeviceSelector(kind, value), WINDOW, ("sensendr.exe", HOSTILE), (), term_index=term_index)
            within = query.narrowed(p, ["ws01.corp.local", HOSTILE, "Ünïcode"])
            before = query.baseline_window(WINDOW, 14)
            label = f"{kind}/{'index' if term_index else 'no index'}"
            out |= {f"matched {label}": query.matched_devices(p), f"lateral {label}": query.lateral_movement(within),
                    f"failed {label}": query.failed_connections(within), f"baseline {label}": query.baseline(within, before),
                    f"lateral unnarrowed {label}": query.lateral_movement(replace(p, devices=()))}
    return out


@pytest.fixture(scope="module", params=["dynamic", "string"])
def analysed(request):
    return analyse(texts(), request.param)


def test_every_query_text_is_valid_kql_for_log_analytics(analysed):
    assert len(analysed) == 4 + 3 * 2 * 5
    assert {label: a["diagnostics"] for label, a in analysed.items() if a["diagnostics"]} == {}


def test_the_lateral_movement_rows_have_the_columns_spec_defines(analysed):
    expected = [f.name for f in fields(Connection)] + ["RemoteDeviceId"]
    for label, a in analysed.items():
        if label.startswith(("lateral", query.LATERAL_MOVEMENT)):
            assert [c.split(":")[0] for c in a["columns"]] == expected, label


def test_the_checker_reports_what_kusto_would_refuse():
    # A control: an unknown column and grouping by a dynamic value are errors to Kusto.
    broken = ("DeviceNetworkEvents | project Nope\n"
              "DeviceNetworkInfo | summarize count() by todynamic(IPAddresses)")
    diagnostics = analyse({"broken": broken}, "dynamic")["broken"]["diagnostics"]
    assert any("Nope" in d for d in diagnostics) and len(diagnostics) >= 2
