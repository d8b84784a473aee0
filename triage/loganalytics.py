"""The Log Analytics engine: the same KQL text, run in the Sentinel workspace.

Built on azure-monitor-query's `LogsQueryClient`. Every query of one run shares one
deadline (`TRIAGE_QUERY_BUDGET_SECONDS`): the server timeout, the client's read
timeout and the retry policy's waits are all cut to what is left of it, so a run
ends (as a transient failure the caller retries) before the function is killed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import RetryPolicy

from .engine import Answer
from .errors import AuthenticationError, TransientError, UpstreamError
from .window import Window

# Log Analytics refuses a server timeout above 10 minutes.
_MAX_SERVER_TIMEOUT = 600
# A query started with less time than this left cannot come back in time.
_MIN_QUERY_SECONDS = 5.0
# Read timeout beyond the server timeout: the server answers (with an error) at its
# timeout, so the client must not give up first.
_READ_MARGIN = 5.0
# The timespan is widened by this much on each side: whether the API treats its ends
# as inclusive is not documented, and the query itself enforces the exact window.
_TIMESPAN_SLACK = timedelta(seconds=1)
_DEFENDER_TABLES = ("DeviceNetworkEvents", "DeviceNetworkInfo")


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's retries (429 and 5xx, honouring Retry-After), but never a wait that
    would end after the call's deadline: such a response is returned as it is."""

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings["deadline"] = time.monotonic() + settings["timeout"]
        return settings

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        wait = self.get_retry_after(response)
        if wait is not None and time.monotonic() + wait >= settings["deadline"]:
            return False
        return super().is_retry(settings, response)


def make_client(endpoint: str, credential: Any) -> Any:
    """One LogsQueryClient per process: it keeps its connections and token between runs."""
    from azure.monitor.query import LogsQueryClient

    # The token audience follows the endpoint (the client's default), so sovereign
    # clouds need only LOG_ANALYTICS_ENDPOINT.
    retry = BoundedRetryPolicy(retry_total=3, retry_backoff_factor=0.5, retry_backoff_max=8)
    return LogsQueryClient(credential, endpoint=endpoint, retry_policy=retry)


class LogAnalyticsEngine:
    name = "log-analytics"
    term_index = True

    def __init__(self, client: Any, workspace_id: str, budget_seconds: float):
        self._client = client
        self.workspace_id = workspace_id
        self._deadline = time.monotonic() + budget_seconds

    def run(self, kql: str, window: Window) -> Answer:
        from azure.monitor.query import LogsQueryPartialResult

        remaining = self._deadline - time.monotonic()
        if remaining < _MIN_QUERY_SECONDS:
            raise TransientError("the Log Analytics queries ran out of their time budget (TRIAGE_QUERY_BUDGET_SECONDS)")
        server_timeout = max(1, min(_MAX_SERVER_TIMEOUT, int(remaining - _READ_MARGIN)))
        try:
            response = self._client.query_workspace(
                self.workspace_id,
                kql,
                timespan=(window.start - _TIMESPAN_SLACK, window.end + _TIMESPAN_SLACK),
                server_timeout=server_timeout,
                timeout=remaining,
                read_timeout=remaining,
            )
        except HttpResponseError as exc:
            raise _refusal(exc) from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(f"Log Analytics did not answer in time or could not be reached: {exc.message}") from None
        if isinstance(response, LogsQueryPartialResult):
            tables, partial = response.partial_data, _partial_message(response.partial_error)
        else:
            tables, partial = response.tables, None
        if not tables:
            return Answer(rows=[], partial_error=partial)
        table = tables[0]
        columns = [str(c) for c in table.columns]
        return Answer(rows=[dict(zip(columns, list(row))) for row in table.rows], partial_error=partial)


def _error_body(exc: HttpResponseError) -> dict[str, Any]:
    try:
        body = json.loads(exc.response.text()) if exc.response is not None else {}
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _innermost(error: Mapping[str, Any]) -> Mapping[str, Any]:
    while isinstance(error.get("innererror"), Mapping):
        error = error["innererror"]
    return error


def _refusal(exc: HttpResponseError) -> Exception:
    """An HTTP error from the query API → the error type that says what to do about it."""
    status = exc.status_code or 0
    error = _error_body(exc)
    code = str(error.get("code") or status)
    detail = str(_innermost(error).get("message") or error.get("message") or exc.reason or "")
    if status == 429 or status == 408 or status >= 500:
        return TransientError(f"Log Analytics is busy or failing (HTTP {status} {code}): {detail}")
    if status == 401:
        return AuthenticationError(f"Log Analytics refused the token (HTTP 401 {code}): {detail}")
    if "Failed to resolve table" in detail and any(t in detail for t in _DEFENDER_TABLES):
        return UpstreamError(
            "the Defender tables (DeviceNetworkEvents, DeviceNetworkInfo) are not in this workspace: connect "
            "Microsoft Defender XDR to Sentinel and stream Device* tables, or query the workspace that has them "
            f"({detail})",
            code="TableNotFound", status=status)
    return UpstreamError(f"Log Analytics refused the query (HTTP {status} {code}): {detail}", code=code, status=status)


def _partial_message(error: Any) -> str:
    """The most specific message of a partial error: the service's top-level one is generic."""
    messages = [str(error.message)] if error is not None and error.message else []
    for detail in (getattr(error, "details", None) or []):
        if isinstance(detail, Mapping):  # the SDK hands back its own mapping type, not dict
            inner = _innermost(detail).get("message") or detail.get("message")
            if inner:
                messages.append(str(inner))
    return "Log Analytics returned partial results: " + (messages[-1] if messages else "no reason given")
