"""The search window of SPEC.md section 3."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import Settings
from .errors import BadInput
from .incident import Incident, Overrides


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with `Z`; microseconds only when there are any (as in expected.json)."""
    return moment.replace(tzinfo=None).isoformat() + "Z"


def search_window(incident: Incident, settings: Settings, now: datetime, overrides: Overrides | None = None) -> Window:
    overrides = overrides or Overrides()
    lookback = timedelta(hours=overrides.lookback_hours if overrides.lookback_hours is not None else settings.lookback_hours)
    followup = timedelta(hours=overrides.followup_hours if overrides.followup_hours is not None else settings.followup_hours)
    first = incident.first_activity or incident.created or now
    last = incident.last_activity or incident.created or now
    try:
        start = overrides.start or first - lookback
        end = min(overrides.end or last + followup, now)
    except OverflowError:
        raise BadInput(f"the incident's activity times are out of range ({iso(first)} to {iso(last)})") from None
    if start > end:
        raise BadInput(f"the search window is empty: start {iso(start)} is after end {iso(end)}")
    return Window(start, end)
