"""A Sentinel (ARM, Microsoft.SecurityInsights 2025-09-01) server that checks every
request against the official API spec (sentinel/spec-2025-09-01): the path must be
one of the spec's paths with its literal casing, the method one of its operations,
api-version the spec's version, path parameters must meet their patterns and the
request body must validate against the operation's body schema and carry none of the
properties the spec marks readOnly (Swagger 2.0: "MUST NOT be sent as part of the
request"). Anything else is answered as ARM would and recorded in `violations`, which
the fixtures assert empty.

It stores comments, tasks and incidents (a PUT replaces the writable properties and
changes the etag; a stale If-Match is 412, a stale body etag 409), serves entities,
queued faults and edits by another writer that land just before a given request.
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
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import unquote, urljoin

import jsonschema
import trustme
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from .https import HttpsServer, Reply, Request
from .identity_server import IdentityServer

if TYPE_CHECKING:
    from referencing._core import Resolver  # what Registry.resolver() returns; not re-exported

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


def _resolve(schema: dict[str, Any], resolver: Resolver) -> tuple[dict[str, Any], Resolver, bool]:
    """The schema behind a $ref chain, its resolver, and whether any step on the way is readOnly
    (the spec puts readOnly both beside a $ref and on the referenced definition)."""
    read_only = schema.get("readOnly") is True
    while "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        schema, resolver = resolved.contents, resolved.resolver
        read_only = read_only or schema.get("readOnly") is True
    return schema, resolver, read_only


def _properties(schema: dict[str, Any], resolver: Resolver) -> dict[str, tuple[dict[str, Any], Resolver]]:
    """A schema's properties, its allOf parents' included."""
    schema, resolver, _ = _resolve(schema, resolver)
    found: dict[str, tuple[dict[str, Any], Resolver]] = {}
    for parent in schema.get("allOf", []):
        found.update(_properties(parent, resolver))
    found.update({name: (sub, resolver) for name, sub in schema.get("properties", {}).items()})
    return found


def read_only_sent(value: Any, schema: dict[str, Any], resolver: Resolver, where: str = "") -> list[str]:
    """Paths of the readOnly properties present in a request body."""
    schema, resolver, read_only = _resolve(schema, resolver)
    if read_only and where:
        return [where]
    if isinstance(value, dict):
        properties = _properties(schema, resolver)
        return [path for name, item in value.items() if name in properties
                for path in read_only_sent(item, *properties[name], f"{where}.{name}".lstrip("."))]
    if isinstance(value, list) and "items" in schema:
        return [path for i, item in enumerate(value)
                for path in read_only_sent(item, schema["items"], resolver, f"{where}[{i}]")]
    return []


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
        self.tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.interleaved: list[tuple[str, Callable[[], None]]] = []
        self.violations: list[str] = []
        self.calls: list[str] = []  # operationIds served, in order
        self._lock = threading.Lock()
        root = self._registry.resolver().lookup(_BASE + "Incidents.json#/definitions/IncidentProperties")
        self._writable = {name for name, (sub, resolver) in _properties(root.contents, root.resolver).items()
                          if not _resolve(sub, resolver)[2]}
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

    def tasks_on(self, incident_id: str) -> dict[str, dict[str, Any]]:
        return self.tasks.get(_key(incident_id), {})

    def incident(self, incident_id: str) -> dict[str, Any]:
        return self.incidents[_key(incident_id)]

    def edit_incident(self, incident_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Another writer (an analyst, a playbook) changes the incident's properties: new etag."""
        stored = self.incidents[_key(incident_id)]
        change(stored["properties"])
        _touch(stored)

    def before_next(self, operation_id: str, action: Callable[[], None]) -> None:
        """Run `action` just before the next `operation_id` is served, e.g. an edit_incident that
        lands between the client's read and its write."""
        self.interleaved.append((operation_id, action))

    def fail(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        self.incidents.clear()
        self.entities.clear()
        self.comments.clear()
        self.tasks.clear()
        self.faults.clear()
        self.interleaved.clear()
        self.violations.clear()
        self.calls.clear()
        self.server.requests.clear()

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
            schema = self._registry.resolver().lookup(op.body_schema_ref)
            read_only = read_only_sent(body, schema.contents, schema.resolver)
            if read_only:
                return self._violation(400, "InvalidRequestContent", f"read-only properties sent: {read_only}")
        elif request.body and request.method in ("GET", "DELETE"):
            return self._violation(400, "InvalidRequestContent", f"{op.operation_id} takes no body")
        if self.identity.audience_of(request.bearer()) != self.url:
            return Reply(401, arm_error("InvalidAuthenticationToken", "The access token is invalid or for another audience."))
        with self._lock:
            self.calls.append(op.operation_id)
            action = next((a for a in self.interleaved if a[0] == op.operation_id), None)
            if action is not None:
                self.interleaved.remove(action)
                action[1]()
            fault = next((f for f in self.faults if f.operation_id == op.operation_id), None)
            if fault is not None:
                self.faults.remove(fault)
                return Reply(fault.status, arm_error(fault.code, f"injected {fault.status}"), fault.headers)
            return self._serve(op.operation_id, request, match, body)

    def _serve(self, operation_id: str, request: Request, match: re.Match[str], body: Any) -> Reply:
        path = request.path
        key = _key(path[:match.end("incidentId")])
        if key not in self.incidents:
            return Reply(404, arm_error("NotFound", f"Incident {match['incidentId']} not found"))
        if operation_id == "Incidents_Get":
            return Reply(200, self.incidents[key])
        if operation_id == "Incidents_CreateOrUpdate":
            return self._replace_incident(key, request.headers.get("if-match"), body)
        if operation_id == "Incidents_ListEntities":
            entities = self.entities[key]
            kinds = sorted({e["kind"] for e in entities})
            return Reply(200, {"entities": entities,
                               "metaData": [{"entityKind": k, "count": sum(e["kind"] == k for e in entities)} for k in kinds]})
        if operation_id == "IncidentTasks_CreateOrUpdate":
            return self._write_task(key, path, match["incidentTaskId"], body)
        if operation_id == "IncidentTasks_Get":
            task = self.tasks.get(key, {}).get(match["incidentTaskId"])
            return Reply(200, task) if task else Reply(404, arm_error("NotFound", "no such task"))
        comments = self.comments.setdefault(key, {})
        if operation_id == "IncidentComments_List":
            return Reply(200, {"value": list(comments.values())})
        name = match["incidentCommentId"]
        if operation_id == "IncidentComments_Get":
            return Reply(200, comments[name]) if name in comments else Reply(404, arm_error("NotFound", "no such comment"))
        if operation_id == "IncidentComments_CreateOrUpdate":
            now = _now()
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

    def _replace_incident(self, key: str, if_match: str | None, body: dict[str, Any]) -> Reply:
        """PUT of an existing incident: the body's writable properties replace the stored ones (what
        the body leaves out is cleared); readOnly ones stay the server's."""
        stored = self.incidents[key]
        if if_match is not None and if_match not in ("*", stored["etag"]):
            return Reply(412, arm_error("PreconditionFailed",
                                        f"The If-Match etag {if_match} does not match the incident's current etag."))
        if if_match is None and body.get("etag") not in (None, stored["etag"]):
            return Reply(409, arm_error("Conflict", "The incident was modified since its etag was read."))
        sent = body["properties"]
        types = {label["labelName"].lower(): label.get("labelType", "User")
                 for label in stored["properties"].get("labels", [])}
        properties = {k: v for k, v in stored["properties"].items() if k not in self._writable}
        properties.update(sent)
        # The service sets labelType: a label it already had keeps its type, a new one is the user's.
        properties["labels"] = [{"labelName": name, "labelType": types.get(name.lower(), "User")}
                                for name in (label["labelName"] for label in sent.get("labels", []))]
        stored["properties"] = properties
        _touch(stored)
        return Reply(200, stored)

    def _write_task(self, key: str, path: str, name: str, body: dict[str, Any]) -> Reply:
        tasks = self.tasks.setdefault(key, {})
        existing = tasks.get(name)
        author = {"objectId": self.identity.client_id, "name": "triage function"}
        now = _now()
        tasks[name] = {
            "id": path, "name": name, "type": "Microsoft.SecurityInsights/incidents/tasks",
            "etag": f'"{uuid.uuid4()}"',
            "properties": {**body["properties"],
                           "createdTimeUtc": existing["properties"]["createdTimeUtc"] if existing else now,
                           "lastModifiedTimeUtc": now,
                           "createdBy": existing["properties"]["createdBy"] if existing else author,
                           "lastModifiedBy": author},
        }
        return Reply(200 if existing else 201, tasks[name])


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _touch(incident: dict[str, Any]) -> None:
    """Every write of an incident gives it a new etag."""
    incident["etag"] = f'"{uuid.uuid4()}"'
    incident["properties"]["lastModifiedTimeUtc"] = _now()


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
