"""The Sentinel REST API (Microsoft.SecurityInsights): read an incident and its entities,
write the triage comment and task, add labels and raise the severity. Implements
`pipeline.Sentinel`.

An azure-core pipeline carries the token; retries are done here rather than by
azure-core's RetryPolicy because the API's rules differ from its defaults: 409 is
retried (a concurrent write of the same comment), and every wait, Retry-After
included, must fit a budget well inside the function timeout.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from .errors import AuthenticationError, BadInput, TransientError, UpstreamError
from .incident import INCIDENT_ID

PRODUCT = "lateral-movement-triage"
# The comment id is a function of (incident, product) only, so a re-run or a duplicate
# delivery overwrites the same comment. ARM ids are case-insensitive, hence lower().
_COMMENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:{PRODUCT}:incident-comment")
# Likewise one task per incident; its own namespace so the task and comment ids differ.
_TASK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:{PRODUCT}:incident-task")

_BUSY = {429, 500, 502, 503, 504}
_CONFLICT_RETRIES = 2
_DEFAULT_WAIT = 2.0  # seconds, doubled per attempt, when a busy answer has no Retry-After
_CONFLICT_WAIT = 1.0  # a concurrent write of one comment is over in well under a second
_REQUEST_TIMEOUT = 30.0
_STALE_RETRIES = 3  # re-reads of an incident someone else changed between our read and our write
_SEVERITIES = ("Informational", "Low", "Medium", "High")  # lowest first
# IncidentProperties a PUT carries (the spec's writable ones): a PUT replaces the incident, so
# every one of them is sent back as read, or an owner or classification set by someone is lost.
# The readOnly ones (incidentNumber, createdTimeUtc, additionalData ...) must not be sent.
_WRITABLE = ("title", "description", "severity", "status", "classification", "classificationComment",
             "classificationReason", "owner", "labels", "firstActivityTimeUtc", "lastActivityTimeUtc")


def comment_id(incident_arm_id: str) -> str:
    return str(uuid.uuid5(_COMMENT_NAMESPACE, incident_arm_id.lower()))


def task_id(incident_arm_id: str) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, incident_arm_id.lower()))


def updated_incident(incident: dict[str, Any], add_labels: Sequence[str],
                     raise_severity_to: str | None) -> dict[str, Any] | None:
    """The Incidents_CreateOrUpdate body for `incident` (as read) with the labels added and the
    severity raised; None when that changes nothing."""
    read = incident.get("properties") or {}
    # labelType is readOnly in the spec (the service sets it), so labels go back by name only.
    labels = [{"labelName": label["labelName"]} for label in read.get("labels") or [] if label.get("labelName")]
    have = {label["labelName"].lower() for label in labels}
    kept = len(labels)
    for name in add_labels:
        if name.lower() not in have:
            labels.append({"labelName": name})
            have.add(name.lower())
    severity = read.get("severity")
    if raise_severity_to and _rank(raise_severity_to) > _rank(severity):
        severity = raise_severity_to
    if len(labels) == kept and severity == read.get("severity"):
        return None
    properties = {name: _without_nulls(read[name]) for name in _WRITABLE if read.get(name) is not None}
    properties.update(labels=labels, severity=severity)
    body: dict[str, Any] = {"properties": properties}
    if incident.get("etag"):
        body["etag"] = incident["etag"]
    return body


def canonical_incident_path(arm_id: str) -> str:
    """The incident id with the API's own segment casing (`incidents`, not `Incidents`),
    each name URL-encoded."""
    match = INCIDENT_ID.match(arm_id)
    if match is None:
        raise BadInput(f"not a Sentinel incident resource id: {arm_id!r}")
    sub, rg, ws, incident = (quote(match[k], safe="") for k in ("sub", "rg", "ws", "incident"))
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}"
            f"/providers/Microsoft.SecurityInsights/incidents/{incident}")


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds or as an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - now).total_seconds())


class SentinelClient:
    def __init__(self, arm_endpoint: str, api_version: str, credential: Any, budget_seconds: float = 20.0,
                 sleep: Callable[[float], None] = time.sleep):
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import (
            BearerTokenCredentialPolicy,
            HeadersPolicy,
            HttpLoggingPolicy,
            UserAgentPolicy,
        )

        self._endpoint = arm_endpoint.rstrip("/")
        self._api_version = api_version
        self._budget = budget_seconds
        self._sleep = sleep
        # HttpLoggingPolicy redacts the Authorization header; bodies are never logged.
        self._client = PipelineClient(self._endpoint, policies=[
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(base_user_agent=PRODUCT),
            BearerTokenCredentialPolicy(credential, f"{self._endpoint}/.default"),
            HttpLoggingPolicy(),
        ])

    def get_incident(self, arm_id: str) -> dict[str, Any]:
        return self._call("GET", canonical_incident_path(arm_id), "read the incident")

    def list_entities(self, arm_id: str) -> list[dict[str, Any]]:
        body = self._call("POST", canonical_incident_path(arm_id) + "/entities", "read the incident's entities")
        entities = body.get("entities")
        return entities if isinstance(entities, list) else []

    def write_comment(self, arm_id: str, html: str) -> str:
        name = comment_id(arm_id)
        self._call("PUT", f"{canonical_incident_path(arm_id)}/comments/{name}", "write the comment",
                   {"properties": {"message": html}})
        return name

    def update_incident(self, arm_id: str, add_labels: Sequence[str], raise_severity_to: str | None) -> None:
        """Read, change, write back with If-Match; when someone else wrote in between, read again
        and re-apply, so their change is kept rather than overwritten."""
        path = canonical_incident_path(arm_id)
        for _ in range(1 + _STALE_RETRIES):
            body = updated_incident(self.get_incident(arm_id), add_labels, raise_severity_to)
            if body is None:
                return
            try:
                self._call("PUT", path, "update the incident", body, if_match=body.get("etag"))
                return
            except _Stale:
                continue
        raise TransientError(f"the incident kept changing while trying to update it ({_STALE_RETRIES} re-reads)")

    def write_task(self, arm_id: str, title: str, description: str) -> str:
        name = task_id(arm_id)
        path = f"{canonical_incident_path(arm_id)}/tasks/{name}"
        # A re-run refreshes the text of a task the analyst may already have completed:
        # it keeps the status it finds, so finished work is not reopened.
        try:
            status = self._call("GET", path, "read the task").get("properties", {}).get("status") or "New"
        except UpstreamError as exc:
            if exc.status != 404:
                raise
            status = "New"
        self._call("PUT", path, "write the task",
                   {"properties": {"title": title, "description": description, "status": status}})
        return name

    def _call(self, method: str, path: str, what: str, body: dict[str, Any] | None = None,
              if_match: str | None = None) -> dict[str, Any]:
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        from azure.core.rest import HttpRequest

        url = f"{self._endpoint}{path}?api-version={quote(self._api_version, safe='')}"
        started = time.monotonic()
        conflicts = attempt = 0
        while True:
            attempt += 1
            default_wait = _DEFAULT_WAIT * 2 ** (attempt - 1)
            headers = {"If-Match": if_match} if if_match else None
            request = HttpRequest(method, url, json=body, headers=headers)
            try:
                response = self._client.send_request(request, connection_timeout=10, read_timeout=_REQUEST_TIMEOUT)
            except (ServiceRequestError, ServiceResponseError) as exc:
                wait, problem = None, f"no answer ({exc.message})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return _json(response.text())
                code, message = _error(response.text())
                problem = f"HTTP {status} {code}: {message}"
                if status == 401:
                    raise AuthenticationError(f"Sentinel refused the token when trying to {what} ({problem})")
                if if_match and status in (409, 412):
                    # The resource changed since it was read (412 to If-Match; a stale etag in the body
                    # is a 409 Conflict): sending this body again would undo the other writer's change.
                    raise _Stale(problem)
                if status == 409:
                    # Another delivery is writing the same comment: let it finish, then overwrite.
                    if conflicts == _CONFLICT_RETRIES:
                        raise TransientError(f"Sentinel kept reporting a conflict when trying to {what} ({problem})")
                    conflicts += 1
                    default_wait = _CONFLICT_WAIT
                elif status not in _BUSY:
                    hint = (" (the Function App's identity needs the Microsoft Sentinel Responder role on the workspace)"
                            if status == 403 else "")
                    raise UpstreamError(f"Sentinel refused to {what}: {problem}{hint}", code=code, status=status)
                wait = retry_after(response.headers.get("Retry-After"), datetime.now(timezone.utc))
            wait = default_wait if wait is None else wait
            if time.monotonic() - started + wait > self._budget:
                raise TransientError(f"Sentinel could not {what} within {self._budget:.0f} s: {problem}")
            self._sleep(wait)


class _Stale(Exception):
    """The resource's etag no longer matches: read it again. Never leaves this module."""


def _rank(severity: str | None) -> int:
    return _SEVERITIES.index(severity) if severity in _SEVERITIES else -1


def _without_nulls(value: Any) -> Any:
    """The API reads back unset fields as null (an unassigned owner), but its schema does not
    accept null for them: leave them out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _json(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        body = json.loads(text)
    except ValueError:
        raise UpstreamError("Sentinel answered with something that is not JSON") from None
    return body if isinstance(body, dict) else {}


def _error(text: str) -> tuple[str, str]:
    """(code, message) of an ARM error body ({"error": {"code", "message"}})."""
    try:
        error = json.loads(text).get("error") or {}
    except (ValueError, AttributeError):
        return "", text[:300]
    if not isinstance(error, dict):  # {"error": "invalid_token"} from a proxy or the token service
        return str(error)[:100], ""
    return str(error.get("code") or ""), str(error.get("message") or "")[:500]
