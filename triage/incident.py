"""Incident input → `Incident` with its Host entities turned into device selectors.

Accepts every input shape of SPEC.md section 5 and applies the Host entity rules of
section 2. Anything that cannot be triaged raises `BadInput` with a message that names
the problem; nothing here touches the network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from .errors import BadInput

SelectorKind = Literal["deviceId", "fqdn", "hostname"]

# RFC 1123 labels (plus '_', which Windows allows), at most 253 characters in all.
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*$")
# Defender device ids are 40 hex characters; accept any plausible hex/GUID-like id.
_DEVICE_ID = re.compile(r"^[0-9A-Fa-f-]{8,64}$")
# An incident's resource id, the one pattern for it (sentinel.py rebuilds the path from its
# parts, links.py takes the workspace); ARM ids are case-insensitive (Incidents, incidents).
INCIDENT_ID = re.compile(
    r"^(?P<workspace>/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.OperationalInsights"
    r"/workspaces/(?P<ws>[^/]+))/providers/Microsoft\.SecurityInsights/incidents/(?P<incident>[^/]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DeviceSelector:
    kind: SelectorKind
    value: str


@dataclass(frozen=True)
class Host:
    """One Host entity: the name an analyst knows it by and how we look it up."""

    name: str
    selector: DeviceSelector | None  # None: the entity names no usable host
    problem: str | None = None


@dataclass(frozen=True)
class Incident:
    arm_id: str | None
    name: str | None = None
    number: int | None = None
    title: str | None = None
    workspace_id: str | None = None
    first_activity: datetime | None = None
    last_activity: datetime | None = None
    created: datetime | None = None
    hosts: tuple[Host, ...] = ()
    # True when the payload carried no entity list at all (minimal request, or an
    # incident resource without relatedEntities): the entities must be fetched.
    entities_missing: bool = False

    def summary(self) -> dict[str, Any]:
        return {"id": self.arm_id, "name": self.name, "number": self.number, "title": self.title}


@dataclass(frozen=True)
class Overrides:
    """Caller's window overrides (SPEC.md section 3), from the request or the CLI."""

    lookback_hours: float | None = None
    followup_hours: float | None = None
    start: datetime | None = None
    end: datetime | None = None


def loads(text: str | bytes) -> Any:
    """Parse a request body, naming the problem when it is not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadInput("the request body is not UTF-8 text") from None
    if not text.strip():
        raise BadInput("the request body is empty; send the Sentinel incident as JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise BadInput("the request body nests too deeply to be an incident") from None


def _get(mapping: Mapping[str, Any], *names: str) -> Any:
    """A property by any of its names, camelCase or PascalCase alike."""
    lowered = {k.lower(): v for k, v in mapping.items()} if isinstance(mapping, Mapping) else {}
    for name in names:
        value = lowered.get(name.lower())
        if isinstance(value, str):
            value = value.strip()  # "WS-FIN-07 " is WS-FIN-07
        if value not in (None, ""):
            return value
    return None


def parse_time(value: Any, what: str) -> datetime | None:
    """ISO 8601 with any number of fraction digits (Sentinel sends seven) → aware UTC."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BadInput(f"{what} must be an ISO 8601 time, got {value!r}")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    text = re.sub(r"[Zz]$", "+00:00", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def unwrap(payload: Any) -> dict[str, Any]:
    """The incident-bearing object of any accepted shape, without the `{"body": ...}` wrapper."""
    if not isinstance(payload, dict):
        raise BadInput(f"the request must be a JSON object, got {type(payload).__name__}")
    if isinstance(payload.get("body"), dict) and not ({"object", "properties", "incidentArmId"} & payload.keys()):
        payload = payload["body"]
    if not payload:
        raise BadInput('the request is an empty object; send the Sentinel incident trigger body or {"incidentArmId": "..."}')
    return payload


def parse_incident(payload: Any) -> Incident:
    """Any accepted input shape → Incident (SPEC.md section 5)."""
    body = unwrap(payload)
    if "object" in body:  # Logic App "Microsoft Sentinel incident" trigger body
        resource = body["object"]
        if not isinstance(resource, dict):
            raise BadInput('"object" must be the incident resource (a JSON object)')
        return _from_resource(resource, workspace_id=_text(body.get("workspaceId"), "workspaceId"))
    if "properties" in body:  # the incident ARM resource itself
        return _from_resource(body, workspace_id=_text(body.get("workspaceId"), "workspaceId"))
    if "incidentArmId" in body:
        arm_id = _arm_id(body["incidentArmId"], "incidentArmId")
        return Incident(arm_id=arm_id, name=arm_id.rsplit("/", 1)[1], entities_missing=True,
                        workspace_id=_text(body.get("workspaceId"), "workspaceId"))
    raise BadInput(
        'the request is not a Sentinel incident: expected the incident trigger body ("object"), '
        'the incident resource ("id" and "properties") or {"incidentArmId": "..."}; '
        f"got keys {sorted(body)[:8]}"
    )


def _text(value: Any, what: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string, got {type(value).__name__}")
    return value


def _arm_id(value: Any, what: str) -> str:
    text = _text(value, what)
    if text is None or not INCIDENT_ID.match(text):
        raise BadInput(
            f"{what} must be an incident resource id such as /subscriptions/…/resourceGroups/…/providers/"
            f"Microsoft.OperationalInsights/workspaces/…/providers/Microsoft.SecurityInsights/incidents/<id>; got {value!r}"
        )
    return text


def _from_resource(resource: dict[str, Any], workspace_id: str | None) -> Incident:
    props = resource.get("properties")
    if not isinstance(props, dict):
        raise BadInput('the incident has no "properties" object')
    arm_id = _arm_id(resource.get("id"), "the incident id") if resource.get("id") else None
    entities = props.get("relatedEntities")
    if entities is not None and not isinstance(entities, list):
        raise BadInput(f"relatedEntities must be a list, got {type(entities).__name__}")
    number = props.get("incidentNumber")
    return Incident(
        arm_id=arm_id,
        name=resource.get("name") or (arm_id.rsplit("/", 1)[1] if arm_id else None),
        number=number if isinstance(number, int) else None,
        title=props.get("title") if isinstance(props.get("title"), str) else None,
        workspace_id=workspace_id,
        first_activity=parse_time(props.get("firstActivityTimeUtc"), "firstActivityTimeUtc"),
        last_activity=parse_time(props.get("lastActivityTimeUtc"), "lastActivityTimeUtc"),
        created=parse_time(props.get("createdTimeUtc"), "createdTimeUtc"),
        hosts=hosts_from_entities(entities or []),
        entities_missing=entities is None,
    )


def hosts_from_entities(entities: list[Any]) -> tuple[Host, ...]:
    """Host entities (kind == "Host") → hosts with their selectors, in entity order."""
    hosts: list[Host] = []
    for entity in entities:
        if not isinstance(entity, dict):
            raise BadInput(f"an entity must be a JSON object, got {type(entity).__name__}")
        kind = _get(entity, "kind", "type")
        if not isinstance(kind, str) or kind.lower() != "host":
            continue
        props = entity.get("properties") if isinstance(entity.get("properties"), dict) else entity
        host = host_from_properties(props)
        # Alerts merged into one incident repeat their entities: search each device once.
        if host.selector is None or all(h.selector != host.selector for h in hosts):
            hosts.append(host)
    return tuple(hosts)


def host_from_properties(props: Mapping[str, Any]) -> Host:
    """SPEC.md section 2: device id, else FQDN, else host name; first match wins."""
    extra = _get(props, "additionalData")
    extra = extra if isinstance(extra, Mapping) else {}
    host_name = _get(props, "hostName")
    dns_domain = _get(props, "dnsDomain")
    short = host_name or _get(props, "netBiosName") or _get(props, "friendlyName")
    label = str(short or _get(extra, "FQDN") or "")

    device_id = _get(props, "MdatpDeviceId", "MdeDeviceId") or _get(extra, "MdatpDeviceId", "MdeDeviceId")
    if device_id is not None:
        if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
            return _not_searched(label or "(unnamed host)", f"its device id {str(device_id)[:80]!r} is not a Defender device id")
        return Host(label or device_id, DeviceSelector("deviceId", device_id.lower()))

    fqdn = _get(extra, "FQDN")
    if fqdn is None and isinstance(host_name, str) and isinstance(dns_domain, str):
        fqdn = f"{host_name}.{dns_domain}"
    if fqdn is None and isinstance(host_name, str) and "." in host_name:
        fqdn = host_name
    if fqdn is not None:
        return _by_name("fqdn", fqdn, label)
    if short is not None:
        return _by_name("hostname", short, label)
    return Host("(unnamed host)", None, "the Host entity has no device id, FQDN or host name")


def _by_name(kind: SelectorKind, value: Any, label: str) -> Host:
    """A name selector, or, for what cannot be a host name, a host that is never searched:
    the other hosts of the incident are still triaged, and the comment says why."""
    name = value.rstrip(".") if isinstance(value, str) else ""
    if not _HOST_NAME.match(name):
        return _not_searched(label or str(value), f"{str(value)[:80]!r} is not a plausible host name (labels of "
                             "1 to 63 letters, digits, '-' or '_', separated by dots, at most 253 characters in all)")
    return Host(label or name, DeviceSelector(kind, name.lower()))


def _not_searched(label: str, problem: str) -> Host:
    return Host(label[:80], None, problem)
