"""One triage run, in the order of SPEC.md section 1.

1. parse the incident (any input shape)      → incident.parse_incident
2. Host entities → device selectors           → incident.hosts_from_entities
3. the search window                          → window.search_window
4. the lateral-movement query per selector    → query + an Engine
5. render one comment, write it or hand it back → comment.render + a Sentinel writer
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from . import comment, query
from .config import Settings
from .engine import Engine
from .errors import BadInput, UpstreamError
from .incident import Host, Incident, Overrides, hosts_from_entities, parse_incident
from .result import Connection, DeviceResult, HostResult, TriageResult
from .window import Window, search_window


class Sentinel(Protocol):
    """What the run needs from the Sentinel API (sentinel.SentinelClient in Azure)."""

    def get_incident(self, arm_id: str) -> dict[str, Any]: ...

    def list_entities(self, arm_id: str) -> list[dict[str, Any]]: ...

    def write_comment(self, arm_id: str, html: str) -> str: ...


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
    window = search_window(incident, settings, now, overrides)
    if not incident.hosts:
        result = TriageResult(incident, window, (), engine="none",
                              skipped_reason="the incident has no Host entity, so there is no device to triage")
    else:
        engine = engine_for(incident)
        hosts = tuple(triage_host(host, engine, window, settings) for host in incident.hosts)
        result = TriageResult(incident, window, hosts, engine=engine.name)
    html = comment.render(result)
    if write:
        if sentinel is None or incident.arm_id is None:
            raise BadInput("cannot write the comment: the incident has no resource id or no Sentinel target is configured")
        result = replace(result, comment_id=sentinel.write_comment(incident.arm_id, html))
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
    params = query.Parameters(selector, window, settings.excluded_processes, settings.excluded_accounts)
    base = HostResult(host.name, selector.kind, selector.value, "found")
    try:
        matched = engine.run(query.matched_devices(params), window)
        names = [str(r["DeviceName"]) for r in matched.rows if r.get("DeviceName")]
        if not names:
            return replace(base, status="device_not_found", partial=bool(matched.partial_error),
                           message=matched.partial_error)
        answer = engine.run(query.lateral_movement(params), window)
    except UpstreamError as exc:
        return replace(base, status="failed", message=str(exc))
    rows = [Connection.from_row(r) for r in answer.rows]
    by_device: dict[str, list[Connection]] = {name: [] for name in names}
    for row in rows:
        by_device.setdefault(row.CompromisedDevice, []).append(row)
    devices = tuple(DeviceResult(name, tuple(conns)) for name, conns in by_device.items())
    ambiguous = selector.kind == "hostname" and len({n.lower() for n in names}) > 1
    partial = matched.partial_error or answer.partial_error
    return replace(base, status="ambiguous" if ambiguous else "found", devices=devices,
                   partial=bool(partial), message=partial)
