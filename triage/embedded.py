"""The embedded engine: the same KQL text, run by duckdb-kql over a local DuckDB database.

Translating KQL to SQL costs more than running the query over a large export (about
0.4 s for the lateral-movement query), and the translation depends on the values only
through the parameter lines that `query.bind` writes (`let Name = <literal>;` at the top
of the text). So the engine reads those lines back into values, puts a
`declare query_parameters(...)` statement in their place, and translates that text once:
the SQL is kept in memory and on disk, keyed by the text, the table schema and the
duckdb-kql version, and the values reach DuckDB as bound parameters, never as SQL text.
Text without parameter lines is translated as it is, through the same cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from .engine import Answer
from .errors import DataError
from .window import Window

# One parameter line exactly as query.literal renders it: a JSON-escaped string, a
# boolean, a datetime, or a dynamic array of such strings.
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_PARAMETER = re.compile(
    rf'let (?P<name>[A-Za-z_][A-Za-z0-9_]*) = (?P<literal>{_STRING}|(?P<flag>true|false)|datetime\((?P<time>[0-9T:.+Z-]+)\)'
    rf'|dynamic\(\[(?P<items>(?:{_STRING}(?:, {_STRING})*)?)\]\));\n')
_PREAMBLE = re.compile(r"(?:[ \t]*(?://[^\n]*)?\n)*")


@dataclass(frozen=True)
class Translation:
    sql: str
    # (parameter name, DuckDB placeholder) in declaration order.
    slots: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Template:
    """KQL text with its parameter lines turned into a declaration, and their values."""

    text: str
    values: dict[str, Any]


def template_of(kql: str) -> Template:
    """The leading comment lines, then as many parameter lines as there are, as values."""
    preamble = _PREAMBLE.match(kql)
    start = preamble.end() if preamble else 0  # it matches everywhere, if only the empty string
    position, declared, values = start, [], {}
    while (match := _PARAMETER.match(kql, position)) is not None:
        name, literal = match["name"], match["literal"]
        if match["flag"] is not None:
            declared.append(f"{name}:bool")
            values[name] = match["flag"] == "true"
        elif match["time"] is not None:
            declared.append(f"{name}:datetime")
            values[name] = datetime.fromisoformat(match["time"].replace("Z", "+00:00")).astimezone(timezone.utc)
        elif match["items"] is not None:
            declared.append(f"{name}:dynamic")
            values[name] = json.loads(literal[len("dynamic("):-1])
        else:
            declared.append(f"{name}:string")
            values[name] = json.loads(literal)
        position = match.end()
    if not declared:
        return Template(kql, {})
    declaration = f"declare query_parameters({', '.join(declared)});\n"
    return Template(kql[:start] + declaration + kql[position:], values)


def _bound(value: Any) -> Any:
    """A parameter value as duckdb-kql binds its type: UTC wall time, dynamic as JSON text."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, list):
        return json.dumps(value)
    return value


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "lateral-movement-triage"


@cache
def _duckdb_kql_version() -> str:
    from importlib.metadata import version

    return version("duckdb-kql")


@cache
def translate(text: str, schema_json: str) -> Translation:
    """The SQL for `text` over tables `schema_json`, from the disk cache or duckdb-kql."""
    key = hashlib.sha256("\0".join((_duckdb_kql_version(), schema_json, text)).encode()).hexdigest()
    path = _cache_dir() / f"{key}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return Translation(stored["sql"], tuple(tuple(s) for s in stored["slots"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not cached yet, or unreadable: translate again
    import duckdb_kql

    try:
        result = duckdb_kql.to_sql(text, schema=json.loads(schema_json))
    except duckdb_kql.KqlError as exc:
        raise DataError(f"the embedded engine cannot translate the query: {exc}") from exc
    translation = Translation(str(result), tuple((d.name, d.slot) for d in result.declarations))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"sql": translation.sql, "slots": translation.slots}), encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass  # a read-only home only costs the next run a translation
    return translation


class EmbeddedEngine:
    name = "embedded"
    term_index = False

    def __init__(self, connection: Any):
        self._con = connection
        # duckdb-kql's SQL assumes a UTC session (KQL datetimes are UTC).
        self._con.execute("SET TimeZone = 'UTC'")
        self._schema_json: str | None = None

    def _schema(self) -> str:
        """Table → columns, as duckdb-kql reads it; the tables do not change under an engine."""
        if self._schema_json is None:
            rows = self._con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_schema = current_schema() "
                "ORDER BY table_name, ordinal_position").fetchall()
            schema: dict[str, list[str]] = {}
            for table, column in rows:
                schema.setdefault(table, []).append(column)
            self._schema_json = json.dumps(schema, sort_keys=True)
        return self._schema_json

    def run(self, kql: str, window: Window) -> Answer:
        import duckdb

        template = template_of(kql)
        translation = translate(template.text, self._schema())
        try:
            values = {slot: _bound(template.values[name]) for name, slot in translation.slots}
            cursor = self._con.execute(translation.sql, values) if values else self._con.execute(translation.sql)
            columns = [d[0] for d in cursor.description]
            json_columns = [i for i, d in enumerate(cursor.description) if str(d[1]) == "JSON"]
            rows = []
            for values_row in cursor.fetchall():
                row = list(values_row)
                for i in json_columns:
                    if isinstance(row[i], str):
                        row[i] = json.loads(row[i])
                rows.append(dict(zip(columns, row)))
        except duckdb.Error as exc:
            raise DataError(f"the embedded engine could not run the query: {exc}") from exc
        return Answer(rows=rows)
