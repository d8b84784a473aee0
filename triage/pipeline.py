"""One triage run, in the order of SPEC.md section 1.

1. parse the incident (any input shape)      → incident.parse_incident
2. Host entities → device selectors           → incident.hosts_from_entities
3. the search window                          → window.search_window
4. the lateral-movement query per selector    → query + an Engine
   (with the devices it matches, its failed attempts and its baseline, for context)
5. render one comment, write it or hand it back → comment.render + a Sentinel writer
   (then the follow-ups each setting asks for  → followups.apply)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from . import comment, followups, query
from .config import Settings
from .engine import Engine
from .errors import BadInput, UpstreamError
from .incident import Host, Incident, Overrides, hosts_from_entities, parse_incident
from .result import Connection, Context, DeviceResult, FailedConnections, HostResult, TriageResult
from .services import PortCatalog
from .window import Window, search_window


class Sentinel(Protocol):
    """What the run needs from the Sentinel API (sentinel.SentinelClient in Azure)."""

    def get_incident(self, arm_id: str) -> dict[str, Any]: ...

    def list_entities(self, arm_id: str) -> list[dict[str, Any]]: ...

    def write_comment(self, arm_id: str, html: str) -> str: ...

    def update_incident(self, arm_id: str, add_labels: Sequence[str], raise_severity_to: str | None) -> None:
        """Add labels and raise (never lower) the severity, safely against concurrent edits (etag)."""
        ...

    def write_task(self, arm_id: str, title: str, description: str) -> str:
        """Create or update this product's one task on the incident; returns the task id."""
        ...


@dataclass(frozen=True)
class Outcome:
    result: TriageResult
    comment_html: str


def run(
    payload: Any,
    engine_for: Callable[[Incident], Engine],
    settings: Settings,
    now: datetime,
    overrides: Overrides | None = None,
    sentinel: Sentinel | None = None,
    write: bool = False,
) -> Outcome:
    incident = with_entities(parse_incident(payload), sentinel)
    if write and (sentinel is None or incident.arm_id is None):
        # Refused before any query: nothing could be written after them.
        raise BadInput("cannot write the comment: the incident has no resource id (object.id) "
                       "or no Sentinel target is configured")
    window = search_window(incident, settings, now, overrides)
    if not incident.hosts:
        result = TriageResult(incident, window, (), engine="none",
                              skipped_reason="the incident has no Host entity, so there is no device to triage")
    else:
        engine = engine_for(incident)
        hosts = tuple(triage_host(host, engine, window, settings) for host in incident.hosts)
        result = TriageResult(incident, window, hosts, engine=engine.name, baseline_days=settings.baseline_days)
    html = comment.render(result)
    if sentinel is not None and incident.arm_id is not None and write:
        result = replace(result, comment_id=sentinel.write_comment(incident.arm_id, html))
        followups.apply(incident.arm_id, result, settings, sentinel)
    return Outcome(result, html)


def with_entities(incident: Incident, sentinel: Sentinel | None) -> Incident:
    """No Host entity in the payload: read the entities from Sentinel, once (SPEC.md section 2)."""
    if incident.hosts:
        return incident
    if sentinel is None or incident.arm_id is None:
        if incident.entities_missing:
            raise BadInput("the request carries no entities; reading them needs the Azure path "
                           "(run without --data, with Sentinel settings) or the full incident trigger body")
        return incident
    if incident.first_activity is None and incident.created is None:
        # A minimal {"incidentArmId"} request: the times come from the incident itself.
        full = parse_incident(sentinel.get_incident(incident.arm_id))
        incident = replace(full, workspace_id=incident.workspace_id or full.workspace_id)
    return replace(incident, hosts=hosts_from_entities(sentinel.list_entities(incident.arm_id)), entities_missing=False)


def triage_host(host: Host, engine: Engine, window: Window, settings: Settings) -> HostResult:
    if host.selector is None:
        return HostResult(host.name, None, None, "unidentified", message=host.problem)
    selector = host.selector
    params = query.Parameters(selector, window, settings.excluded_processes, settings.excluded_accounts,
                              term_index=engine.term_index)
    base = HostResult(host.name, selector.kind, selector.value, "found")
    try:
        matched = engine.run(query.matched_devices(params), window)
        names = [str(r["DeviceName"]) for r in matched.rows if r.get("DeviceName")]
        if not names:
            return replace(base, status="device_not_found", partial=bool(matched.partial_error),
                           message=matched.partial_error, query=query.lateral_movement(params))
        within = query.narrowed(params, names)
        lateral = query.lateral_movement(within)
        base = replace(base, query=lateral)
        connections = engine.run(lateral, window)
        failed = engine.run(query.failed_connections(within), window)
        history = None
        if settings.baseline_days:
            before = query.baseline_window(window, settings.baseline_days)
            history = engine.run(query.baseline(within, before), before)
    except UpstreamError as exc:
        return replace(base, status="failed", message=str(exc), query=query.lateral_movement(params))
    baseline = Baseline.from_rows(history.rows) if history else None
    devices = tuple(_device(name, connections.rows, failed.rows, baseline, settings.ports)
                    for name in _device_names(names, connections.rows))
    ambiguous = selector.kind == "hostname" and len({n.lower() for n in names}) > 1
    partial = next((a.partial_error for a in (matched, connections, failed, history) if a and a.partial_error), None)
    return replace(base, status="ambiguous" if ambiguous else "found", devices=devices,
                   partial=bool(partial), message=partial)


def _device_names(matched: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The matched devices, then any other device the rows name (kept, never merged)."""
    names = list(dict.fromkeys(matched))
    return names + sorted({str(r["CompromisedDevice"]) for r in rows} - set(names))


@dataclass(frozen=True)
class Baseline:
    """Per compromised device: the internal addresses it reached before the window, and their holders."""

    addresses: dict[str, set[str]]
    devices: dict[str, set[str]]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Baseline:
        addresses: dict[str, set[str]] = {}
        devices: dict[str, set[str]] = {}
        for row in rows:
            device = str(row["CompromisedDevice"]).lower()
            addresses.setdefault(device, set()).add(str(row["RemoteIP"]))
            if row.get("RemoteDeviceName"):
                devices.setdefault(device, set()).add(str(row["RemoteDeviceName"]).lower())
        return cls(addresses, devices)

    def context(self, c: Connection) -> tuple[bool, bool | None]:
        device = c.CompromisedDevice.lower()
        new_address = c.RemoteIP not in self.addresses.get(device, set())
        if not c.RemoteDeviceName:
            return new_address, None
        return new_address, c.RemoteDeviceName.lower() not in self.devices.get(device, set())


def _device(name: str, rows: list[dict[str, Any]], failed_rows: list[dict[str, Any]], history: Baseline | None,
            ports: PortCatalog) -> DeviceResult:
    connections, contexts = [], []
    for row in rows:
        if row["CompromisedDevice"] != name:
            continue
        c = Connection.from_row(row)
        new_address, new_device = history.context(c) if history else (None, None)
        connections.append(c)
        contexts.append(Context(c.RemoteIP, tuple(ports.label(p, c.ConnectedPorts) for p in c.ConnectedPorts),
                                tuple(ports.admin(c.ConnectedPorts)), new_address, new_device,
                                str(row.get("RemoteDeviceId") or "") or None))
    failed = tuple(FailedConnections.from_row(r) for r in failed_rows if r["CompromisedDevice"] == name)
    return DeviceResult(name, tuple(connections), tuple(contexts), failed)
