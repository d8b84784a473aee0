"""Reading a stored incident comment back: the rows of its tables, to compare with expected.json."""

from __future__ import annotations

from html.parser import HTMLParser


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def comment_rows(html: str) -> list[tuple[str, str, str, str, str, str]]:
    """(last seen, remote IP, remote device, ports, count, first seen) per table row."""
    parser = _Rows()
    parser.feed(html)
    return [tuple(r[:6]) for r in parser.rows if r]  # type: ignore[misc]


def expected_rows(expected: dict) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (c["LastSeen"], c["RemoteIP"], c["RemoteDeviceName"] or "no Defender device", ", ".join(map(str, c["ConnectedPorts"])),
         str(c["ConnectionCount"]), c["FirstSeen"])
        for h in expected["hosts"] for d in h["devices"] for c in d["connections"]
    ]


def remote_device(cell: str) -> str:
    """The device cell without its "(also reported by ...)" note."""
    return cell.split(" (also reported by ")[0]
