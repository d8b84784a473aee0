"""Changes to the incident beyond the comment, each behind a setting (all off by default):
labels such as `lateral-movement:smb`, a severity raise on a rule, a task for the analyst."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Settings
from .result import Connection, Context, TriageResult

if TYPE_CHECKING:
    from .pipeline import Sentinel

LABEL_PREFIX = "lateral-movement:"
_TASK_DESTINATIONS = 10  # destinations named in the task; the comment has them all


def labels(rows: list[tuple[Connection, Context]], settings: Settings) -> list[str]:
    return sorted({LABEL_PREFIX + settings.ports.tag(p, c.ConnectedPorts) for c, x in rows for p in x.AdminPorts})


def severity(rows: list[tuple[Connection, Context]], settings: Settings) -> str | None:
    """The severity to raise the incident to, when the configured rule matches."""
    if not settings.raise_severity_to:
        return None
    matches = any(x.AdminPorts for _, x in rows) if settings.raise_severity_when == "admin" else bool(rows)
    return settings.raise_severity_to if matches else None


def task_text(rows: list[tuple[Connection, Context]]) -> tuple[str, str]:
    sources = sorted({c.CompromisedDevice for c, _ in rows})
    title = f"Review internal connections from {', '.join(sources)}"[:250]
    first = sorted(rows, key=lambda r: (not r[1].AdminPorts, -r[0].LastSeen.timestamp()))[:_TASK_DESTINATIONS]
    lines = [f"{c.RemoteIP} ({c.RemoteDeviceName or 'no Defender device'}): {', '.join(x.Services)}" for c, x in first]
    more = f"\n… and {len(rows) - len(first)} more in the triage comment." if len(rows) > len(first) else ""
    return title, "Confirm each connection was expected:\n" + "\n".join(lines) + more


def apply(arm_id: str, result: TriageResult, settings: Settings, sentinel: Sentinel) -> None:
    rows = result.rows()
    add = labels(rows, settings) if settings.add_labels else []
    raise_to = severity(rows, settings)
    if add or raise_to:
        sentinel.update_incident(arm_id, add, raise_to)
    if settings.create_task and rows:
        sentinel.write_task(arm_id, *task_text(rows))
