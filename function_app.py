"""Azure Functions entry point (v2 programming model). Thin: the work is in triage/.

Importing this module only declares the functions; settings, the credential and the
clients are built on the first invocation. This is also the one place where triage
errors become HTTP statuses and queue decisions.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from functools import lru_cache

import azure.functions as func

from triage import pipeline
from triage.azure import AzureServices, services
from triage.config import Settings
from triage.errors import AuthenticationError, BadInput, ConfigurationError, TransientError, TriageError, UpstreamError
from triage.incident import loads, parse_incident

QUEUE = "triage-requests"
# Seconds a caller should wait before retrying after a 503.
RETRY_AFTER = "30"

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("triage")


@lru_cache(maxsize=1)
def _services(settings: Settings) -> AzureServices:
    # Kept between invocations: the clients reuse connections and the cached token.
    return services(settings)


def _triage(payload: object) -> pipeline.Outcome:
    settings = Settings.from_env()
    azure = _services(settings)
    outcome = pipeline.run(payload, azure.engine_for, settings, datetime.now(timezone.utc),
                           sentinel=azure.sentinel, write=True)
    result = outcome.result
    log.info("triage: incident %s: %s, %d row(s), comment %s",
             result.incident.arm_id, result.status, result.row_count, result.comment_id)
    return outcome


def _json_response(status: int, doc: dict, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(doc), status_code=status, mimetype="application/json", headers=headers)


@app.function_name("triage_http")
@app.route(route="triage", methods=["POST"])
@app.queue_output(arg_name="queued", queue_name=QUEUE, connection="AzureWebJobsStorage")
def triage_http(req: func.HttpRequest, queued: func.Out[str]) -> func.HttpResponse:
    """POST /api/triage: triage now (200), or with `Prefer: respond-async` queue it (202)."""
    try:
        body = req.get_body()
        payload = loads(body)
        if "respond-async" in (req.headers.get("Prefer") or "").lower():
            incident = parse_incident(payload)  # a request that cannot succeed is refused now, not queued
            queued.set(body.decode("utf-8-sig"))
            return _json_response(202, {"status": "queued", "queue": QUEUE, "incident": incident.arm_id})
        outcome = _triage(payload)
    except BadInput as exc:
        return _json_response(400, {"error": "bad_request", "message": str(exc)})
    except TransientError as exc:
        log.warning("triage: transient failure, the caller may retry: %s", exc)
        return _json_response(503, {"error": "unavailable", "message": str(exc)}, {"Retry-After": RETRY_AFTER})
    except UpstreamError as exc:
        log.error("triage: refused upstream: %s", exc)
        return _json_response(502, {"error": "upstream", "code": exc.code, "message": str(exc)})
    except AuthenticationError as exc:
        log.error("triage: authentication failed: %s", exc)
        return _json_response(500, {"error": "authentication", "message": str(exc)})
    except ConfigurationError as exc:
        log.error("triage: configuration: %s", exc)
        return _json_response(500, {"error": "configuration", "message": str(exc)})
    except TriageError as exc:
        log.error("triage: failed: %s", exc)
        return _json_response(500, {"error": "failed", "message": str(exc)})
    doc = outcome.result.to_json() | {"rows": outcome.result.row_count}
    return _json_response(200, doc)


@app.function_name("triage_queue")
@app.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def triage_queue(msg: func.QueueMessage) -> None:
    """A message on triage-requests: the same body as POST /api/triage.

    Returning completes the message; raising makes the runtime deliver it again (up to
    host.json maxDequeueCount, then the poison queue). So a message that can never
    succeed is logged and completed, and only what may succeed later is raised:
    transient failures, and authentication or configuration problems, whose messages
    wait in the poison queue to be replayed once fixed.
    """
    try:
        _triage(loads(msg.get_body()))
    except (BadInput, UpstreamError) as exc:
        log.error("triage: message %s (delivery %s) can never succeed, completed without retry: %s",
                  msg.id, msg.dequeue_count, exc)
