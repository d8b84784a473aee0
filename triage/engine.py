"""The engine seam: one method that runs KQL text and returns rows.

The query text is the same for every engine (see query.py); engines differ only in
where the data lives: `embedded.EmbeddedEngine` (DuckDB over exported Defender data)
and `loganalytics.LogAnalyticsEngine` (the Sentinel workspace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .window import Window


@dataclass(frozen=True)
class Answer:
    rows: list[dict[str, Any]]
    # Set when the engine returned only part of the result (Log Analytics partial
    # success): the rows are used, and the comment says they may be incomplete.
    partial_error: str | None = None


class Engine(Protocol):
    name: str
    # Whether `has_any` is looked up in a term index (Log Analytics) rather than tested
    # row by row (the embedded engine): the queries use it as a pre-filter only then.
    term_index: bool

    def run(self, kql: str, window: Window) -> Answer:
        """Run `kql`; `window` is the time range the query covers (Log Analytics' timespan)."""
        ...
