"""The incident comment (SPEC.md section 6): escaped, well-formed HTML under 30,000 characters.

It opens with a one-line summary, then per host how it was matched and what was found:
per device, the successful internal connections (remote administration and file sharing
first, new destinations marked), then failed or attempted ones. Rows are cut at row
boundaries with "N of M shown"; every value is escaped and long values are shortened
before escaping, so the limit holds whatever the data holds.
"""

from __future__ import annotations

from collections.abc import Iterator

from markupsafe import Markup, escape

from . import links
from .result import Connection, Context, DeviceResult, FailedConnections, HostResult, TriageResult
from .window import iso

LIMIT = 30_000
_CELL = 200  # characters of one value shown in a cell
_TRAILER_ROOM = 200  # the closing notes
_ROWS_ROOM = 10_000  # links are dropped before rows are squeezed below this
_MATCHED_BY = {"deviceId": "Defender device id", "fqdn": "FQDN", "hostname": "host name"}
_COLUMNS = ("", "Last seen (UTC)", "Remote IP", "Remote device", "Ports", "Connections",
            "First seen (UTC)", "Process", "Account", "Remote URL")
_FAILED_COLUMNS = ("Remote IP", "Failed", "Attempted", "Ports", "First seen (UTC)", "Last seen (UTC)")


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _e(value: object) -> Markup:
    return escape(_short(value))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _header(columns: tuple[str, ...]) -> str:
    return "<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"


_HEADER = _header(_COLUMNS)
_FAILED_HEADER = _header(_FAILED_COLUMNS)


def _row(c: Connection, x: Context) -> str:
    flags = x.flags
    device: Markup = _e(c.RemoteDeviceName or "no Defender device")
    if c.RemoteDeviceName and x.RemoteDeviceId:
        device = Markup(f'<a href="{escape(links.device_page(x.RemoteDeviceId))}">{device}</a>')
    others = [n for n in c.RemoteDeviceCandidates if n != c.RemoteDeviceName]
    if others:
        device += Markup(" (also reported by ") + _e(", ".join(others)) + Markup(")")
    cells = (_e(flags) if not flags else Markup(f"<b>{_e(flags)}</b>"), _e(iso(c.LastSeen)), _e(c.RemoteIP), device,
             _e(", ".join(x.Services)), _e(c.ConnectionCount), _e(iso(c.FirstSeen)),
             _e(c.InitiatingProcessFileName), _e(c.InitiatingProcessAccountUpn or c.InitiatingProcessAccountSid),
             _e(c.RemoteUrl))
    return "<tr>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>"


def _failed_row(f: FailedConnections) -> str:
    cells = (f.RemoteIP, f.Failed, f.Attempted, ", ".join(map(str, f.Ports)), iso(f.FirstSeen), iso(f.LastSeen))
    return "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in cells) + "</tr>"


def _ordered(d: DeviceResult) -> list[tuple[Connection, Context]]:
    """Remote administration and file sharing first; otherwise the query's order (latest first)."""
    return sorted(zip(d.connections, d.context), key=lambda pair: not pair[1].AdminPorts)


def summary_text(result: TriageResult) -> str:
    """The one-line answer, in plain words: the comment's first line and the CLI's."""
    s = result.summary()
    failed_hosts = sum(h.status == "failed" for h in result.hosts)
    parts = []
    if failed_hosts:
        parts.append(f"INCOMPLETE: the query failed for {_plural(failed_hosts, 'host')}")
    if any(h.partial for h in result.hosts):
        parts.append("partial results")
    searched = [h for h in result.hosts if h.status in ("found", "ambiguous")]
    if result.row_count == 0:
        if searched:
            parts.append("no successful connections to internal addresses" + (" from the other hosts" if failed_hosts else ""))
        elif not failed_hosts:
            parts.append("no Defender device was searched")
    else:
        parts.append(f"reached {_plural(s.devices, 'internal device')}, {s.admin_devices} over admin protocols")
        if s.addresses_without_device:
            # Held by a device is judged from the reports inside the window (SPEC section 4).
            parts.append(f"{_plural(s.addresses_without_device, 'internal address', 'internal addresses')} "
                         "with no Defender device in the window")
        if result.baseline_days:
            parts.append(f"{_plural(s.new_destinations, 'new destination')} (not contacted in the "
                         f"{result.baseline_days} days before)")
    if s.failed_attempts:
        parts.append(f"{_plural(s.failed_attempts, 'failed or attempted connection')} to "
                     f"{_plural(s.failed_addresses, 'internal address', 'internal addresses')}")
    text = "; ".join(parts) or "nothing to report"
    return text[0].upper() + text[1:] + "."


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
    text = head + ": " + lines.get(h.status, f"{_plural(len(h.devices), 'device')} matched.")
    if h.partial:
        text += f" <b>Partial results</b>: {_e(h.message)}. Connections below may be incomplete."
    return text + "</p>"


def _links(h: HostResult, result: TriageResult) -> str:
    if not h.query or result.window is None or h.status not in ("found", "ambiguous"):
        return ""
    anchors = [f'<a href="{escape(links.advanced_hunting(h.query))}">Defender advanced hunting</a>']
    workspace = links.log_analytics(h.query, result.incident.arm_id, result.window)
    if workspace:
        anchors.insert(0, f'<a href="{escape(workspace)}">Log Analytics</a>')
    return f"<p>Run this host's query in {' or '.join(anchors)}.</p>"


def _device_intro(d: DeviceResult) -> str:
    n = len(d.connections)
    if n == 0:
        text = f"<p>Device <b>{_e(d.device_name)}</b>: no successful connections to internal addresses in the window."
    else:
        text = f"<p>Device <b>{_e(d.device_name)}</b> reached {_plural(n, 'internal address', 'internal addresses')}:"
    return text + "</p>"


_FAILED_INTRO = "<p>Failed or attempted connections to internal addresses (none succeeded):</p>"


def _tables(d: DeviceResult) -> Iterator[tuple[str, str, list[str]]]:
    """(intro, header, rows) of each table of a device: its connections, then its failed attempts."""
    yield _device_intro(d), _HEADER, [_row(c, x) for c, x in _ordered(d)]
    if d.failed:
        yield _FAILED_INTRO, _FAILED_HEADER, [_failed_row(f) for f in d.failed]


def _allocate(tables: list[list[str]], budget: int) -> list[int]:
    """How many rows of each table fit: round-robin by rank, so every table keeps its
    first rows before any table gets more; stops at the first row that does not fit."""
    shown = [0] * len(tables)
    for rank in range(max(map(len, tables), default=0)):
        for i, rows in enumerate(tables):
            if rank < len(rows):
                if len(rows[rank]) > budget:
                    return shown
                budget -= len(rows[rank])
                shown[i] += 1
    return shown


def _fixed_size(host: HostResult, tables: list[tuple[str, str, list[str]]]) -> int:
    """A host's share of the comment without rows, with room for table markup and notes."""
    return len(_host_paragraph(host)) + sum(len(intro) + len(header) + len("</table>") + 40 for intro, header, _ in tables)


def render(result: TriageResult) -> str:
    head = [f"<p><b>Lateral-movement triage</b>: {escape(summary_text(result))}</p>"]
    if result.window:
        head.append(f"<p>Window searched: {_e(iso(result.window.start))} to {_e(iso(result.window.end))}. "
                    "Successful connections to internal (RFC 1918) addresses from Defender "
                    "<code>DeviceNetworkEvents</code>; ADMIN marks remote administration and file sharing"
                    + (", NEW a destination not contacted before" if result.baseline_days else "") + ".</p>")
    if result.skipped_reason:
        head.append(f"<p>Skipped: {_e(result.skipped_reason)}.</p>")
    budget = LIMIT - sum(map(len, head)) - len("<div></div>") - _TRAILER_ROOM
    # Every host is listed before any row is: an incident with hundreds of hosts loses rows first.
    hosts: list[tuple[HostResult, list[tuple[str, str, list[str]]]]] = []
    for host in result.hosts:
        tables = [t for d in host.devices for t in _tables(d)]
        size = _fixed_size(host, tables)
        if size > budget:
            break
        budget -= size
        hosts.append((host, tables))
    link_html = {id(h): _links(h, result) for h, _ in hosts}
    rows_total = sum(len(r) for _, tables in hosts for _, _, rows in tables for r in rows)
    link_size = sum(map(len, link_html.values()))
    if budget - link_size >= min(_ROWS_ROOM, rows_total):
        budget -= link_size
    else:
        link_html = {}
    shown = iter(_allocate([rows for _, tables in hosts for _, _, rows in tables], budget))
    body, cut = [], len(hosts) < len(result.hosts)
    for host, tables in hosts:
        body.append(_host_paragraph(host) + link_html.get(id(host), ""))
        for intro, header, rows in tables:
            n = next(shown)
            body.append(intro)
            if n:
                body.append(header + "".join(rows[:n]) + "</table>")
            if n < len(rows):
                cut = True
                body.append(f"<p>{n} of {len(rows)} shown.</p>")
    if len(hosts) < len(result.hosts):
        body.append(f"<p>{len(result.hosts) - len(hosts)} more host(s) not shown: the comment is full.</p>")
    if cut:
        body.append("<p>The comment is limited to 30,000 characters; run the query for every row.</p>")
    return "<div>" + "".join(head + body) + "</div>"
