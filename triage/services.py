"""What a port is for, and which ones lateral movement uses (remote administration, file sharing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from .errors import ConfigurationError

# Well-known services an analyst recognises; everything else shows as the bare number.
SERVICE_NAMES: dict[int, str] = {
    22: "SSH", 23: "Telnet", 25: "SMTP", 53: "DNS", 80: "HTTP", 88: "Kerberos", 123: "NTP", 135: "RPC",
    137: "NetBIOS-NS", 138: "NetBIOS-DGM", 139: "NetBIOS-SMB", 389: "LDAP", 443: "HTTPS", 445: "SMB",
    464: "Kerberos-pw", 636: "LDAPS", 1433: "SQL Server", 1521: "Oracle", 3268: "LDAP-GC", 3269: "LDAPS-GC",
    3306: "MySQL", 3389: "RDP", 5432: "PostgreSQL", 5900: "VNC", 5985: "WinRM", 5986: "WinRM-HTTPS",
    8080: "HTTP-alt", 9389: "AD-WS",
}
# Remote administration and file sharing (SMB, RPC, RDP, WinRM, SSH, SQL): what an attacker
# moving laterally uses, and what comes first in the comment.
# Their short names, for incident labels (lateral-movement:smb).
_TAGS = {22: "ssh", 135: "rpc", 139: "smb", 445: "smb", 1433: "sql", 3389: "rdp", 5985: "winrm", 5986: "winrm"}
ADMIN_PORTS: frozenset[int] = frozenset(_TAGS)
DYNAMIC_RPC = range(49152, 65536)


@dataclass(frozen=True)
class PortCatalog:
    # (port, name or "") added by the TRIAGE_ADMIN_PORTS setting; a tuple keeps Settings hashable.
    extra: tuple[tuple[int, str], ...] = ()

    @cached_property
    def names(self) -> Mapping[int, str]:
        return SERVICE_NAMES | {port: name for port, name in self.extra if name}

    @cached_property
    def admin_ports(self) -> frozenset[int]:
        return ADMIN_PORTS | {port for port, _ in self.extra}

    def label(self, port: int, ports: Iterable[int] = ()) -> str:
        if port in self.names:
            return f"{port} {self.names[port]}"
        if port in DYNAMIC_RPC and 135 in ports:
            return f"{port} dynamic RPC"
        return str(port)

    def admin(self, ports: Iterable[int]) -> list[int]:
        """The ports of one remote address that are remote administration or file sharing.
        A high port counts as dynamic RPC only beside 135 (the endpoint mapper) on the same address."""
        ports = list(ports)
        return [p for p in ports if p in self.admin_ports or (p in DYNAMIC_RPC and 135 in ports)]

    def tag(self, port: int, ports: Iterable[int] = ()) -> str:
        """A short lower-case name for an admin port, for incident labels (lateral-movement:smb)."""
        if port in DYNAMIC_RPC and port not in self.names and 135 in ports:
            return "rpc"
        return _TAGS.get(port) or self.names.get(port, f"port-{port}").lower().replace(" ", "-")

    @classmethod
    def with_extra(cls, spec: str) -> PortCatalog:
        """Setting TRIAGE_ADMIN_PORTS: extra admin ports, `5900` or `5900=VNC`, comma-separated."""
        extra = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            port_text, _, name = item.partition("=")
            if not port_text.strip().isdigit() or not 0 < int(port_text) < 65536:
                raise ConfigurationError(f"TRIAGE_ADMIN_PORTS: {item!r} is not a port (1-65535), optionally =Name")
            extra.append((int(port_text), name.strip()))
        return cls(tuple(extra))
