"""Reading a stored incident comment back: the rows of its tables, to compare with expected.json."""

from __future__ import annotations

from html.parser import HTMLParser


class _Rows(HTMLParser):
    """Cells of every table, header cells included, table by table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def comment_rows(html: str) -> list[tuple[str, str, str, str, str, str]]:
    """(last seen, remote IP, remote device, ports, count, first seen) per row of the
    successful-connection tables, sorted (the comment puts admin protocols first).
    Ports are the numbers of the "445 SMB, 3389 RDP" cell."""
    parser = _Rows()
    parser.feed(html)
    rows = []
    for header, *body in parser.tables:
        if header[1:3] != ["Last seen (UTC)", "Remote IP"]:
            continue  # the failed-connection tables
        for _, last, ip, device, ports, count, first, *_ in body:
            numbers = ", ".join(p.split(" ")[0] for p in ports.split(", ")) if ports else ""
            rows.append((last, ip, device, numbers, count, first))
    return sorted(rows)


def expected_rows(expected: dict) -> list[tuple[str, str, str, str, str, str]]:
    return sorted([
        (c["LastSeen"], c["RemoteIP"], c["RemoteDeviceName"] or "no Defender device", ", ".join(map(str, c["ConnectedPorts"])),
         str(c["ConnectionCount"]), c["FirstSeen"])
        for h in expected["hosts"] for d in h["devices"] for c in d["connections"]
    ])


def remote_device(cell: str) -> str:
    """The device cell without its "(also reported by ...)" note."""
    return cell.split(" (also reported by ")[0]
