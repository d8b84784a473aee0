"""The result model: what one run found, per host and per device (SPEC.md sections 4–5)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .incident import Incident, parse_time
from .window import Window, iso

HostStatus = Literal["found", "device_not_found", "ambiguous", "failed", "unidentified"]
RunStatus = Literal["done", "partial", "failed", "skipped"]

_TEXT_FIELDS = ("RemoteUrl", "InitiatingProcessFileName", "InitiatingProcessAccountSid", "InitiatingProcessAccountUpn")


@dataclass(frozen=True)
class Connection:
    """One row of SPEC.md section 4: everything the device did with one internal address."""

    RemoteIP: str
    RemoteDeviceName: str | None
    RemoteDeviceCandidates: tuple[str, ...]
    ConnectedPorts: tuple[int, ...]
    ConnectionCount: int
    FirstSeen: datetime
    LastSeen: datetime
    RemoteUrl: str | None
    InitiatingProcessFileName: str | None
    InitiatingProcessAccountSid: str | None
    InitiatingProcessAccountUpn: str | None
    CompromisedDevice: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Connection:
        """An engine's row → Connection. Engines differ in how they hand back arrays
        (lists or JSON text) and empty strings; the model is the same for all."""
        def array(value: Any) -> list[Any]:
            if isinstance(value, str):
                value = json.loads(value) if value else []
            return list(value or [])

        def text(value: Any) -> str | None:
            return None if value in (None, "") else str(value)

        return cls(
            RemoteIP=str(row["RemoteIP"]),
            RemoteDeviceName=text(row.get("RemoteDeviceName")),
            RemoteDeviceCandidates=tuple(sorted({str(v) for v in array(row.get("RemoteDeviceCandidates"))})),
            ConnectedPorts=tuple(sorted({int(v) for v in array(row.get("ConnectedPorts")) if v is not None})),
            ConnectionCount=int(row["ConnectionCount"]),
            FirstSeen=_moment(row["FirstSeen"]),
            LastSeen=_moment(row["LastSeen"]),
            **{name: text(row.get(name)) for name in _TEXT_FIELDS},
            CompromisedDevice=str(row["CompromisedDevice"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "RemoteIP": self.RemoteIP,
            "RemoteDeviceName": self.RemoteDeviceName,
            "RemoteDeviceCandidates": list(self.RemoteDeviceCandidates),
            "ConnectedPorts": list(self.ConnectedPorts),
            "ConnectionCount": self.ConnectionCount,
            "FirstSeen": iso(self.FirstSeen),
            "LastSeen": iso(self.LastSeen),
            **{name: getattr(self, name) for name in _TEXT_FIELDS},
            "CompromisedDevice": self.CompromisedDevice,
        }


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    parsed = parse_time(value, "a result time")
    if parsed is None:
        raise ValueError("a connection row has no time")
    return parsed


@dataclass(frozen=True)
class DeviceResult:
    device_name: str
    connections: tuple[Connection, ...]

    def to_json(self) -> dict[str, Any]:
        return {"deviceName": self.device_name, "connections": [c.to_json() for c in self.connections]}


@dataclass(frozen=True)
class HostResult:
    host_name: str
    matched_by: str | None  # deviceId | fqdn | hostname
    selector_value: str | None
    status: HostStatus
    devices: tuple[DeviceResult, ...] = ()
    # Partial results or a failure, in words an analyst can act on.
    message: str | None = None
    partial: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "hostName": self.host_name,
            "matchedBy": self.matched_by,
            "selector": self.selector_value,
            "status": self.status,
            "devices": [d.to_json() for d in self.devices],
        }
        if self.partial:
            doc["partial"] = True
        if self.message:
            doc["message"] = self.message
        return doc


@dataclass(frozen=True)
class TriageResult:
    incident: Incident
    window: Window | None
    hosts: tuple[HostResult, ...]
    engine: str
    skipped_reason: str | None = None
    comment_id: str | None = field(default=None, compare=False)

    @property
    def status(self) -> RunStatus:
        if self.skipped_reason:
            return "skipped"
        if any(h.status == "failed" for h in self.hosts):
            return "failed" if all(h.status == "failed" for h in self.hosts) else "partial"
        return "partial" if any(h.partial for h in self.hosts) else "done"

    @property
    def row_count(self) -> int:
        return sum(len(d.connections) for h in self.hosts for d in h.devices)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "incident": self.incident.summary(),
            "status": self.status,
            "engine": self.engine,
            "window": self.window.to_json() if self.window else None,
            "hosts": [h.to_json() for h in self.hosts],
        }
        if self.skipped_reason:
            doc["skippedReason"] = self.skipped_reason
        if self.comment_id:
            doc["commentId"] = self.comment_id
        return doc
