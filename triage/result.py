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
        def text(value: Any) -> str | None:
            return None if value in (None, "") else str(value)

        return cls(
            RemoteIP=str(row["RemoteIP"]),
            RemoteDeviceName=text(row.get("RemoteDeviceName")),
            RemoteDeviceCandidates=tuple(sorted({str(v) for v in _array(row.get("RemoteDeviceCandidates"))})),
            ConnectedPorts=_ports(row.get("ConnectedPorts")),
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


def _array(value: Any) -> list[Any]:
    """Engines hand back arrays as lists or as JSON text."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return list(value or [])


def _ports(value: Any) -> tuple[int, ...]:
    return tuple(sorted({int(v) for v in _array(value) if v is not None}))


@dataclass(frozen=True)
class Context:
    """What the comment adds to one row of SPEC.md section 4 (kept apart from the row)."""

    RemoteIP: str
    Services: tuple[str, ...]  # "445 SMB", "49726 dynamic RPC"
    AdminPorts: tuple[int, ...]  # remote administration / file sharing
    NewAddress: bool | None  # not contacted in the baseline period; None: no baseline
    NewDevice: bool | None  # None: no baseline, or no Defender device
    RemoteDeviceId: str | None

    @property
    def flags(self) -> str:
        """ADMIN (remote administration, file sharing) and NEW (not contacted before), as shown."""
        return " ".join(f for f, on in (("ADMIN", self.AdminPorts), ("NEW", self.NewAddress or self.NewDevice)) if on)

    def to_json(self) -> dict[str, Any]:
        return {"RemoteIP": self.RemoteIP, "Services": list(self.Services), "AdminPorts": list(self.AdminPorts),
                "NewAddress": self.NewAddress, "NewDevice": self.NewDevice, "RemoteDeviceId": self.RemoteDeviceId}


@dataclass(frozen=True)
class FailedConnections:
    """Failed and attempted connections to one internal address (failed_connections.kql)."""

    RemoteIP: str
    Failed: int
    Attempted: int
    Ports: tuple[int, ...]
    FirstSeen: datetime
    LastSeen: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FailedConnections:
        return cls(str(row["RemoteIP"]), int(row["Failed"]), int(row["Attempted"]), _ports(row.get("Ports")),
                   _moment(row["FirstSeen"]), _moment(row["LastSeen"]))

    def to_json(self) -> dict[str, Any]:
        return {"RemoteIP": self.RemoteIP, "Failed": self.Failed, "Attempted": self.Attempted,
                "Ports": list(self.Ports), "FirstSeen": iso(self.FirstSeen), "LastSeen": iso(self.LastSeen)}


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
    context: tuple[Context, ...] = ()  # one per connection, same order
    failed: tuple[FailedConnections, ...] = ()

    def __post_init__(self) -> None:
        if len(self.context) != len(self.connections):
            raise ValueError(f"{self.device_name}: {len(self.connections)} connections but {len(self.context)} contexts")

    def to_json(self) -> dict[str, Any]:
        return {"deviceName": self.device_name, "connections": [c.to_json() for c in self.connections],
                "context": [c.to_json() for c in self.context],
                "failedConnections": [f.to_json() for f in self.failed]}


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
    # The lateral-movement query exactly as run, for the comment's links.
    query: str | None = None

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
        if self.query:
            doc["query"] = self.query
        return doc


@dataclass(frozen=True)
class Summary:
    """The comment's first line, in numbers."""

    devices: int  # distinct internal Defender devices reached
    admin_devices: int  # of those, reached over remote administration / file sharing
    admin_addresses_without_device: int
    addresses_without_device: int
    new_destinations: int  # addresses not contacted in the baseline period
    failed_attempts: int
    failed_addresses: int

    def to_json(self) -> dict[str, int]:
        return {"internalDevices": self.devices, "devicesOverAdminProtocols": self.admin_devices,
                "adminAddressesWithoutDevice": self.admin_addresses_without_device,
                "addressesWithoutDevice": self.addresses_without_device, "newDestinations": self.new_destinations,
                "failedAttempts": self.failed_attempts, "failedAddresses": self.failed_addresses}


@dataclass(frozen=True)
class TriageResult:
    incident: Incident
    window: Window | None
    hosts: tuple[HostResult, ...]
    engine: str
    skipped_reason: str | None = None
    comment_id: str | None = field(default=None, compare=False)
    baseline_days: int = 0

    @property
    def status(self) -> RunStatus:
        if self.skipped_reason:
            return "skipped"
        if any(h.status == "failed" for h in self.hosts):
            return "failed" if all(h.status == "failed" for h in self.hosts) else "partial"
        return "partial" if any(h.partial for h in self.hosts) else "done"

    def rows(self) -> list[tuple[Connection, Context]]:
        """Every connection of every device, with its context."""
        return [(c, x) for h in self.hosts for d in h.devices for c, x in zip(d.connections, d.context)]

    def summary(self) -> Summary:
        rows = self.rows()
        failed = [f for h in self.hosts for d in h.devices for f in d.failed]
        return Summary(
            devices=len({c.RemoteDeviceName.lower() for c, _ in rows if c.RemoteDeviceName}),
            admin_devices=len({c.RemoteDeviceName.lower() for c, x in rows if c.RemoteDeviceName and x.AdminPorts}),
            admin_addresses_without_device=len({c.RemoteIP for c, x in rows if not c.RemoteDeviceName and x.AdminPorts}),
            addresses_without_device=len({c.RemoteIP for c, _ in rows if not c.RemoteDeviceName}),
            new_destinations=len({c.RemoteIP for c, x in rows if x.NewAddress}),
            failed_attempts=sum(f.Failed + f.Attempted for f in failed),
            failed_addresses=len({f.RemoteIP for f in failed}),
        )

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
        doc["summary"] = self.summary().to_json()
        doc["baselineDays"] = self.baseline_days
        if self.comment_id:
            doc["commentId"] = self.comment_id
        return doc
