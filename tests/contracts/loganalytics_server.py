"""A Log Analytics query API (POST /v1/workspaces/{id}/query) that answers in the
documented response format (see query_api_response_format_example.json) by running
the received KQL on the embedded engine (duckdb-kql) over a case's exported data.

Faults are queued with `fail(...)` and served one per request, before any query runs.
A workspace registered without data has no Defender tables, and the query fails the
way Log Analytics fails it (400, SemanticError "Failed to resolve table ...").
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb_kql
import trustme

from triage.exports import load_folder

from .https import HttpsServer, Reply, Request
from .identity_server import IdentityServer

_PATH = re.compile(r"^/v1/workspaces/(?P<workspace>[^/]+)/query$")
_KQL_TYPES = {"VARCHAR": "string", "TIMESTAMP": "datetime", "BIGINT": "long", "INTEGER": "int",
              "DOUBLE": "real", "BOOLEAN": "bool", "HUGEINT": "long"}


@dataclass
class Fault:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    partial: str | None = None  # answer with the rows plus this PartialError message


def error_body(code: str, message: str, inner: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "code": code, "correlationId": str(uuid.uuid4())}
    if inner:
        error["innererror"] = inner
    return {"error": error}


def throttled(retry_after: str | None) -> Fault:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Fault(429, error_body("ThrottledError", "Too many requests, retry later."), headers)


def gateway_timeout() -> Fault:
    return Fault(504, error_body("GatewayTimeout", "The query did not complete in time."))


def partial(message: str) -> Fault:
    return Fault(200, partial=message)


class LogAnalyticsServer:
    def __init__(self, ca: trustme.CA, identity: IdentityServer):
        self.identity = identity
        self.workspaces: dict[str, Any] = {}  # workspace id -> DuckDB connection
        self.faults: list[Fault] = []
        self.queries: list[dict[str, Any]] = []  # what each answered query asked: kql, timespan, prefer
        self._lock = threading.Lock()
        self.server = HttpsServer(ca, self._handle)
        self.url = self.server.url

    def load(self, workspace_id: str, data: Path | None) -> None:
        """The workspace's tables: a case's data folder, or None for a workspace without Defender tables."""
        self.workspaces[workspace_id.lower()] = load_folder(data) if data else duckdb_kql.connect()

    def fail(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        self.faults.clear()
        self.queries.clear()

    def _handle(self, request: Request) -> Reply:
        match = _PATH.match(request.path)
        if request.method != "POST" or match is None:
            return Reply(404, error_body("PathNotFoundError", f"{request.method} {request.path} is not an API path"))
        if self.identity.audience_of(request.bearer()) != self.url:
            return Reply(401, error_body("AuthorizationRequiredError", "Valid authentication was not provided"))
        body = request.json() or {}
        query, timespan = body.get("query"), body.get("timespan")
        if not isinstance(query, str) or not query.strip():
            return Reply(400, error_body("BadArgumentError", "The request had some invalid properties"))
        connection = self.workspaces.get(match["workspace"].lower())
        if connection is None:
            return Reply(404, error_body("WorkspaceNotFoundError", f"Workspace {match['workspace']} not found"))
        with self._lock:
            self.queries.append({"kql": query, "timespan": timespan, "prefer": request.headers.get("prefer")})
            fault = self.faults.pop(0) if self.faults else None
            if fault is not None and fault.partial is None:
                return Reply(fault.status, fault.body, fault.headers)
            try:
                table = _run(connection, query)
            except duckdb_kql.KqlSchemaError as exc:
                name = re.search(r"for '(\w+)' \(unknown table", str(exc))
                return Reply(400, error_body("BadArgumentError", "The request had some invalid properties", {
                    "code": "SemanticError", "message": "A semantic error occurred.",
                    "innererror": {"code": "SEM0100", "message": "'union' operator: Failed to resolve table or column "
                                   f"expression named '{name[1] if name else 'unknown'}'"}}))
        answer: dict[str, Any] = {"tables": [table]}
        if fault is not None:
            answer["error"] = {"code": "PartialError", "message": "There were some errors when processing your query.",
                               "details": [{"code": "EngineError", "message": "Something went wrong processing your query on the server.",
                                            "innererror": {"code": "-2133196797", "message": fault.partial}}]}
        return Reply(200, answer)


def _run(connection: Any, kql: str) -> dict[str, Any]:
    relation = duckdb_kql.query(connection, kql)
    types = [_KQL_TYPES.get(str(t), "dynamic") for t in relation.types]
    rows = [[_value(v, t) for v, t in zip(row, types)] for row in relation.fetchall()]
    return {"name": "PrimaryResult", "columns": [{"name": c, "type": t} for c, t in zip(relation.columns, types)],
            "rows": rows}


def _value(value: Any, kql_type: str) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kql_type == "dynamic":
        # Log Analytics sends dynamic values as JSON text.
        return value if isinstance(value, str) else json.dumps(value)
    return value
