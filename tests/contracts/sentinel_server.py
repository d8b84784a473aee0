"""A Sentinel (ARM, Microsoft.SecurityInsights 2025-09-01) server that checks every
request against the official API spec (sentinel/spec-2025-09-01): the path must be
one of the spec's paths with its literal casing, the method one of its operations,
api-version the spec's version, path parameters must meet their patterns and the
request body must validate against the operation's body schema. Anything else is
answered as ARM would and recorded in `violations`, which the fixtures assert empty.

It stores comments, serves incidents and their entities, and serves queued faults.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import jsonschema
import trustme
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from .https import HttpsServer, Reply, Request
from .identity_server import IdentityServer

SPEC = Path(__file__).resolve().parent / "sentinel" / "spec-2025-09-01"
# The spec's files sit deeper in their repository than here; refs are resolved against
# their original locations (spec-2025-09-01/README.md has the table).
_BASE = ("https://github.com/Azure/azure-rest-api-specs/specification/securityinsights/resource-manager/"
         "Microsoft.SecurityInsights/SecurityInsights/stable/2025-09-01/")
_FILES = {
    "/common-types/resource-management/v5/types.json": "common-types/resource-management/v5/types.json",
    "/common/2.0/types.json": "common/2.0/types.json",
    "/2025-09-01/common/EntityTypes.json": "common/EntityTypes.json",
    "/2025-09-01/common/IncidentTypes.json": "common/IncidentTypes.json",
    "/2025-09-01/common/AlertTypes.json": "common/AlertTypes.json",
    "/2025-09-01/Incidents.json": "Incidents.json",
}


def _load(uri: str) -> Any:
    for suffix, local in _FILES.items():
        if uri.split("#")[0].endswith(suffix):
            return json.loads((SPEC / local).read_text(encoding="utf-8"))
    raise LookupError(f"the spec copy has no file for {uri}")


def _retrieve(uri: str) -> Resource:
    return Resource.from_contents(_load(uri), default_specification=DRAFT4)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    pattern: re.Pattern[str]
    parameters: tuple[dict[str, Any], ...]  # resolved
    body_schema_ref: str | None


def load_operations() -> tuple[list[Operation], str, Registry]:
    spec = _load(_BASE + "Incidents.json")
    registry = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    resolver = registry.resolver(base_uri=_BASE + "Incidents.json")
    operations = []
    for path, item in spec["paths"].items():
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
        for method, op in item.items():
            if method == "parameters":
                continue
            params = tuple(resolver.lookup(p["$ref"]).contents if "$ref" in p else p for p in op.get("parameters", []))
            body = next((p for p in params if p.get("in") == "body"), None)
            body_ref = urljoin(_BASE + "Incidents.json", body["schema"]["$ref"]) if body else None
            operations.append(Operation(op["operationId"], method.upper(), re.compile(regex), params, body_ref))
    return operations, spec["info"]["version"], registry


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass
class Fault:
    operation_id: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    code: str = "Conflict"


class SentinelServer:
    def __init__(self, ca: trustme.CA, identity: IdentityServer):
        self.identity = identity
        self.operations, self.api_version, self._registry = load_operations()
        self.incidents: dict[str, dict[str, Any]] = {}
        self.entities: dict[str, list[dict[str, Any]]] = {}
        self.comments: dict[str, dict[str, dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.violations: list[str] = []
        self.calls: list[str] = []  # operationIds served, in order
        self._lock = threading.Lock()
        self.server = HttpsServer(ca, self._handle)
        self.url = self.server.url

    # --- test set-up and inspection ---

    def add_incident(self, resource: dict[str, Any]) -> None:
        """An incident as the API stores it; its relatedEntities become the entities endpoint's answer."""
        stored = copy.deepcopy(resource)
        entities = stored["properties"].pop("relatedEntities", [])
        key = _key(stored["id"])
        self.incidents[key] = stored
        self.entities[key] = entities

    def comments_on(self, incident_id: str) -> dict[str, dict[str, Any]]:
        return self.comments.get(_key(incident_id), {})

    def fail(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        self.incidents.clear()
        self.entities.clear()
        self.comments.clear()
        self.faults.clear()
        self.violations.clear()
        self.calls.clear()

    # --- the API ---

    def _violation(self, status: int, code: str, message: str) -> Reply:
        self.violations.append(message)
        return Reply(status, arm_error(code, message))

    def _handle(self, request: Request) -> Reply:
        matches = [(op, m) for op in self.operations if (m := op.pattern.match(request.path))]
        if not matches:
            return self._violation(404, "InvalidResourceType", f"no such path in the spec: {request.path}")
        found = [(op, m) for op, m in matches if op.method == request.method]
        if not found:
            return self._violation(405, "MethodNotAllowed", f"{request.method} is not an operation of {request.path}")
        op, match = found[0]
        if request.query.get("api-version") != self.api_version:
            return self._violation(400, "InvalidApiVersionParameter",
                                   f"api-version {request.query.get('api-version')!r} is not {self.api_version}")
        for param in op.parameters:
            if param.get("in") == "path":
                problem = _check_path_parameter(param, match[param["name"]])
                if problem:
                    return self._violation(400, "InvalidParameter", problem)
        body = None
        if op.body_schema_ref:
            if not request.headers.get("content-type", "").startswith("application/json"):
                return self._violation(415, "UnsupportedMediaType", "the body must be application/json")
            try:
                body = request.json()
                validator = jsonschema.Draft4Validator({"$ref": op.body_schema_ref}, registry=self._registry)
                validator.validate(body)
            except (ValueError, jsonschema.ValidationError) as exc:
                return self._violation(400, "InvalidRequestContent", f"{op.operation_id} body: {str(exc)[:300]}")
            read_only = set((body.get("properties") or {}).keys()) & {"createdTimeUtc", "lastModifiedTimeUtc", "author"}
            if read_only:
                return self._violation(400, "InvalidRequestContent", f"read-only properties sent: {sorted(read_only)}")
        elif request.body and request.method in ("GET", "DELETE"):
            return self._violation(400, "InvalidRequestContent", f"{op.operation_id} takes no body")
        if self.identity.audience_of(request.bearer()) != self.url:
            return Reply(401, arm_error("InvalidAuthenticationToken", "The access token is invalid or for another audience."))
        with self._lock:
            self.calls.append(op.operation_id)
            fault = next((f for f in self.faults if f.operation_id == op.operation_id), None)
            if fault is not None:
                self.faults.remove(fault)
                return Reply(fault.status, arm_error(fault.code, f"injected {fault.status}"), fault.headers)
            return self._serve(op.operation_id, request.path, match, body)

    def _serve(self, operation_id: str, path: str, match: re.Match[str], body: Any) -> Reply:
        incident_path = path.split("/comments")[0].removesuffix("/entities")
        key = _key(incident_path)
        if key not in self.incidents:
            return Reply(404, arm_error("NotFound", f"Incident {match['incidentId']} not found"))
        if operation_id == "Incidents_Get":
            return Reply(200, self.incidents[key])
        if operation_id == "Incidents_ListEntities":
            entities = self.entities[key]
            kinds = sorted({e["kind"] for e in entities})
            return Reply(200, {"entities": entities,
                               "metaData": [{"entityKind": k, "count": sum(e["kind"] == k for e in entities)} for k in kinds]})
        comments = self.comments.setdefault(key, {})
        if operation_id == "IncidentComments_List":
            return Reply(200, {"value": list(comments.values())})
        name = match["incidentCommentId"]
        if operation_id == "IncidentComments_Get":
            return Reply(200, comments[name]) if name in comments else Reply(404, arm_error("NotFound", "no such comment"))
        if operation_id == "IncidentComments_CreateOrUpdate":
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            existing = comments.get(name)
            comments[name] = {
                "id": path, "name": name, "type": "Microsoft.SecurityInsights/incidents/comments",
                "etag": f'"{uuid.uuid4()}"',
                "properties": {"message": body["properties"]["message"],
                               "createdTimeUtc": existing["properties"]["createdTimeUtc"] if existing else now,
                               "lastModifiedTimeUtc": now,
                               "author": {"objectId": self.identity.client_id, "name": "triage function"}},
            }
            return Reply(200 if existing else 201, comments[name])
        return self._violation(501, "NotImplemented", f"{operation_id} is not served by this contract server")


def _key(incident_id: str) -> str:
    """ARM ids are case-insensitive."""
    return incident_id.lower().rstrip("/")


def _check_path_parameter(param: dict[str, Any], value: str) -> str | None:
    text = unquote(value)
    if param.get("format") == "uuid":
        try:
            uuid.UUID(text)
        except ValueError:
            return f"{param['name']} must be a UUID, got {text!r}"
    schema = {k: param[k] for k in ("type", "pattern", "minLength", "maxLength") if k in param}
    try:
        jsonschema.Draft4Validator(schema).validate(text)
    except jsonschema.ValidationError as exc:
        return f"{param['name']}={text!r}: {exc.message}"
    return None
