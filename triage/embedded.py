"""The embedded engine: the same KQL text, run by duckdb-kql over a local DuckDB database."""

from __future__ import annotations

import json
from typing import Any

from .engine import Answer
from .errors import DataError
from .window import Window


class EmbeddedEngine:
    name = "embedded"

    def __init__(self, connection: Any):
        self._con = connection

    def run(self, kql: str, window: Window) -> Answer:
        import duckdb
        import duckdb_kql

        try:
            relation = duckdb_kql.query(self._con, kql)
            columns = list(relation.columns)
            json_columns = {c for c, t in zip(columns, relation.types) if str(t) == "JSON"}
            rows = []
            for values in relation.fetchall():
                row = dict(zip(columns, values))
                for c in json_columns:
                    if isinstance(row[c], str):
                        row[c] = json.loads(row[c])
                rows.append(row)
        except (duckdb.Error, duckdb_kql.KqlError) as exc:
            raise DataError(f"the embedded engine could not run the query: {exc}") from exc
        return Answer(rows=rows, columns=columns)
