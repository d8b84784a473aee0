"""The incident comment (SPEC.md section 6): escaped, well-formed HTML under 30,000 characters.

Rows are cut at row boundaries with "N of M shown"; every value is escaped and long
values are shortened before escaping, so the limit holds whatever the data holds.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from .result import Connection, DeviceResult, HostResult, TriageResult
from .window import iso

LIMIT = 30_000
_CELL = 200  # characters of one value shown in a cell
_MATCHED_BY = {"deviceId": "Defender device id", "fqdn": "FQDN", "hostname": "host name"}
_COLUMNS = ("Last seen (UTC)", "Remote IP", "Remote device", "Ports", "Connections",
            "First seen (UTC)", "Process", "Account", "Remote URL")


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _e(value: object) -> Markup:
    return escape(_short(value))


def _row(c: Connection) -> str:
    device = c.RemoteDeviceName or "no Defender device"
    others = [n for n in c.RemoteDeviceCandidates if n != c.RemoteDeviceName]
    if others:
        device += f" (also reported by {', '.join(others)})"
    cells = (iso(c.LastSeen), c.RemoteIP, device, ", ".join(map(str, c.ConnectedPorts)), c.ConnectionCount,
             iso(c.FirstSeen), c.InitiatingProcessFileName or "", c.InitiatingProcessAccountUpn or c.InitiatingProcessAccountSid or "",
             c.RemoteUrl or "")
    return "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in cells) + "</tr>"


_TRAILER_ROOM = 200  # the closing notes
_HEADER = "<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in _COLUMNS) + "</tr>"


def _host_paragraph(h: HostResult) -> str:
    how = _MATCHED_BY.get(h.matched_by or "", "")
    head = f"<p><b>Host {_e(h.host_name)}</b>"
    if how:
        head += f", matched by {how} <code>{_e(h.selector_value)}</code>"
    lines = {
        "device_not_found": "no Defender device matched it in the window (not onboarded, or not seen then).",
        "unidentified": f"not searched: {_e(h.message)}.",
        "failed": f"<b>the query failed</b>: {_e(h.message)}. Its connections are unknown, not absent.",
        "ambiguous": f"<b>ambiguous</b>: {len(h.devices)} devices carry this name ({_e(', '.join(d.device_name for d in h.devices))}); "
                     "each is listed on its own.",
    }
    text = head + ": " + lines.get(h.status, f"{len(h.devices)} device{'s' if len(h.devices) != 1 else ''} matched.")
    if h.partial:
        text += f" <b>Partial results</b>: {_e(h.message)}. Connections below may be incomplete."
    return text + "</p>"


def _device_intro(d: DeviceResult) -> str:
    n = len(d.connections)
    if n == 0:
        return f"<p>Device <b>{_e(d.device_name)}</b>: no successful connections to internal addresses in the window.</p>"
    return f"<p>Device <b>{_e(d.device_name)}</b> reached {n} internal address{'es' if n != 1 else ''}:</p>"


def _allocate(tables: list[list[str]], budget: int) -> list[int]:
    """How many rows of each table fit: round-robin by rank, so every device keeps its
    most recent rows before any device gets more; stops at the first row that does not fit."""
    shown = [0] * len(tables)
    for rank in range(max(map(len, tables), default=0)):
        for i, rows in enumerate(tables):
            if rank < len(rows):
                if len(rows[rank]) > budget:
                    return shown
                budget -= len(rows[rank])
                shown[i] += 1
    return shown


def _fixed_size(host: HostResult) -> int:
    """A host's share of the comment without rows, with room for table markup and notes."""
    return len(_host_paragraph(host)) + sum(len(_device_intro(d)) + len(_HEADER) + len("</table>") + 40 for d in host.devices)


def render(result: TriageResult) -> str:
    head = ["<p><b>Lateral-movement triage</b>: successful connections from the incident's devices to "
            "internal (RFC 1918) addresses, from Defender <code>DeviceNetworkEvents</code>.</p>"]
    if result.window:
        head.append(f"<p>Window searched: {_e(iso(result.window.start))} to {_e(iso(result.window.end))}.</p>")
    if result.skipped_reason:
        head.append(f"<p>Skipped: {_e(result.skipped_reason)}.</p>")
    budget = LIMIT - sum(map(len, head)) - len("<div></div>") - _TRAILER_ROOM
    # Every host is listed before any row is: an incident with hundreds of hosts loses rows first.
    hosts = []
    for host in result.hosts:
        if _fixed_size(host) > budget:
            break
        budget -= _fixed_size(host)
        hosts.append(host)
    tables = [[_row(c) for c in d.connections] for h in hosts for d in h.devices]
    shown = iter(_allocate(tables, budget))
    rows = iter(tables)
    body, cut = [], len(hosts) < len(result.hosts)
    for host in hosts:
        body.append(_host_paragraph(host))
        for device in host.devices:
            n, device_rows = next(shown), next(rows)
            body.append(_device_intro(device))
            if n:
                body.append(_HEADER + "".join(device_rows[:n]) + "</table>")
            if n < len(device_rows):
                cut = True
                body.append(f"<p>{n} of {len(device_rows)} shown.</p>")
    if len(hosts) < len(result.hosts):
        body.append(f"<p>{len(result.hosts) - len(hosts)} more host(s) not shown: the comment is full.</p>")
    if cut:
        body.append("<p>The comment is limited to 30,000 characters; run the query for every row.</p>")
    return "<div>" + "".join(head + body) + "</div>"
