"""Exported Defender data (SPEC.md section 5, "Data folder") → DuckDB tables.

Every file is read by DuckDB itself (JSON, CSV, Parquet, gzip or not): no Python loop
over events. Only the columns the queries use are kept, under their Sentinel names
(`Timestamp` becomes `TimeGenerated`), so the KQL text is the same as in Log Analytics.
Files of one kind and shape are read by one statement, which DuckDB spreads over the
cores; Parquet is not read at all until a query scans it. `import_folder` writes the
tables to a DuckDB file, for many incidents over one export without reading it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError

# table -> column -> DuckDB type. The column a row must have to count as the table's.
TABLES: dict[str, dict[str, str]] = {
    "DeviceNetworkEvents": {
        "TimeGenerated": "TIMESTAMP", "DeviceId": "VARCHAR", "DeviceName": "VARCHAR",
        "ActionType": "VARCHAR", "RemoteIP": "VARCHAR", "RemotePort": "BIGINT", "RemoteUrl": "VARCHAR",
        "InitiatingProcessFileName": "VARCHAR", "InitiatingProcessAccountName": "VARCHAR",
        "InitiatingProcessAccountSid": "VARCHAR", "InitiatingProcessAccountUpn": "VARCHAR",
    },
    "DeviceNetworkInfo": {
        "TimeGenerated": "TIMESTAMP", "DeviceId": "VARCHAR", "DeviceName": "VARCHAR", "IPAddresses": "VARCHAR",
    },
}
# Columns a file of the table must have (besides Timestamp or TimeGenerated): without
# them a rule of the query would silently stop applying. RemoteUrl and the account's
# SID and UPN are only shown, so exports may leave them out.
_REQUIRED = {
    "DeviceNetworkEvents": ("DeviceId", "DeviceName", "ActionType", "RemoteIP", "RemotePort",
                            "InitiatingProcessFileName", "InitiatingProcessAccountName"),
    "DeviceNetworkInfo": ("DeviceId", "DeviceName", "IPAddresses"),
}
# What tells a flat file's table when its name does not: all of these columns.
_SIGNATURE = {"DeviceNetworkEvents": ("ActionType", "RemoteIP"), "DeviceNetworkInfo": ("IPAddresses",)}
_FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class DataFile:
    path: Path
    format: str  # json | csv | parquet
    table: str | None  # None: streaming-API envelopes, each naming its own table


def classify(path: Path) -> DataFile:
    """What a file holds, from its name; JSON files without a table name are sniffed later."""
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    suffix = Path(stem).suffix
    if suffix not in _FORMATS:
        raise DataError(f"{path}: not a Defender export this tool reads (expected .jsonl, .json, .csv or .parquet, optionally .gz)")
    table = next((t for t in TABLES if stem.startswith(t.lower())), None)
    return DataFile(path, _FORMATS[suffix], table)


def data_files(folder: Path) -> list[DataFile]:
    if folder.is_file():
        raise DataError(f"{folder}: --data takes a folder of exports (or a .duckdb file from `triage import`), not one file")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: the data folder has no files")
    return [classify(p) for p in files]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TIME_COLUMNS = ("timegenerated", "timestamp")


def _time(expr: str) -> str:
    # Through TIMESTAMPTZ so that offsets in the text are honoured; the session is UTC.
    return f"CAST(CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"


def _require_columns(file: DataFile, table: str, present: set[str]) -> None:
    """A file without a column the query filters on would silently change the answer."""
    lowered = {c.lower() for c in present}
    missing = [c for c in _REQUIRED[table] if c.lower() not in lowered]
    if not set(_TIME_COLUMNS) & lowered:
        missing.insert(0, "Timestamp or TimeGenerated")
    if missing:
        raise DataError(f"{file.path}: {table} rows without column(s) {', '.join(missing)}")


def _struct_select(table: str, source: str) -> str:
    """Rows of `table` from `source`, whose columns are the JSON fields read as text."""
    cols = []
    for column, type_ in TABLES[table].items():
        if column == "TimeGenerated":
            cols.append(f"{_time('coalesce(TimeGenerated, Timestamp)')} AS TimeGenerated")
        elif column == "IPAddresses":
            # A JSON array, or a string holding one (as the streaming API sends it).
            cols.append("CASE WHEN json_type(IPAddresses) = 'VARCHAR' THEN IPAddresses ->> '$' "
                        "ELSE CAST(IPAddresses AS VARCHAR) END AS IPAddresses")
        else:
            cols.append(f"CAST({column} AS {type_}) AS {column}")
    return f"SELECT {', '.join(cols)} FROM {source}"


def _json_fields(tables: Iterable[str]) -> dict[str, str]:
    """What read_json parses: only the fields the queries use, all as text but IPAddresses."""
    fields = {"Timestamp": "VARCHAR"}
    for table in tables:
        fields |= {c: "JSON" if c == "IPAddresses" else "VARCHAR" for c in TABLES[table]}
    return fields


# Time columns used as they are: the queries compare them with constants, so DuckDB can
# skip row groups and filter inside the scan; a cast per row would prevent both.
_UTC_TIMES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")


def _columnar_select(table: str, source: str, present: dict[str, str]) -> str:
    lowered = {c.lower(): c for c in present}
    cols = []
    for column, type_ in TABLES[table].items():
        found = lowered.get(column.lower())
        if column == "TimeGenerated":
            found = found or lowered.get("timestamp")
            # A Parquet time already in UTC is taken as it is, so DuckDB can prune row groups by it.
            expr = "NULL" if not found else f'"{found}"' if present[found] in _UTC_TIMES else _time(f'"{found}"')
        else:
            expr = f'CAST("{found}" AS {type_})' if found else f"CAST(NULL AS {type_})"
        cols.append(f"{expr} AS {column}")
    return f"SELECT {', '.join(cols)} FROM {source}"


@dataclass(frozen=True)
class Batch:
    """Files read by one statement (DuckDB reads them in parallel): same kind, same columns."""

    kind: str  # envelopes | json | csv | parquet
    table: str | None  # None for envelopes, which hold both tables
    present: tuple[tuple[str, str], ...]  # columns and their types, as sniffed
    files: tuple[DataFile, ...]

    def reader(self, files: tuple[DataFile, ...] | None = None) -> str:
        paths = "[" + ", ".join(_sql_string(str(f.path)) for f in (files or self.files)) + "]"
        if self.kind == "parquet":
            return f"read_parquet({paths})"
        if self.kind == "csv":
            # Times as text, cast by _time(): DuckDB 2.0 drops a CSV time's offset
            # ("08:00+02:00" becomes 08:00) when the value is inserted into a TIMESTAMP column.
            texts = ", ".join(f"{_sql_string(c)}: 'VARCHAR'" for c in self.columns() if c.lower() in _TIME_COLUMNS)
            return f"read_csv({paths}, header=true{f', types={{{texts}}}' if texts else ''})"
        if self.kind == "envelopes":
            fields = ", ".join(f"{name} {type_}" for name, type_ in _json_fields(TABLES).items())
            return (f"(SELECT category, properties.* FROM read_json({paths}, format='auto', "
                    f"columns={{category: 'VARCHAR', properties: 'STRUCT({fields})'}}))")
        assert self.table is not None
        fields = ", ".join(f"{name}: '{type_}'" for name, type_ in _json_fields([self.table]).items())
        return f"read_json({paths}, format='auto', columns={{{fields}}})"

    def selects(self, files: tuple[DataFile, ...] | None = None) -> dict[str, str]:
        """table -> the SELECT giving its rows from these files."""
        reader = self.reader(files)
        if self.kind == "envelopes":
            return {t: _struct_select(t, f"{reader} WHERE category = 'AdvancedHunting-{t}'") for t in TABLES}
        assert self.table is not None
        if self.kind == "json":
            return {self.table: _struct_select(self.table, reader)}
        return {self.table: _columnar_select(self.table, reader, self.columns())}

    def columns(self) -> dict[str, str]:
        """The columns as the reader gives them: a CSV's times are text (see `reader`)."""
        if self.kind != "csv":
            return dict(self.present)
        return {c: "VARCHAR" if c.lower() in _TIME_COLUMNS else t for c, t in self.present}


def _sniff(con: Any, file: DataFile) -> tuple[str, str | None, dict[str, str]]:
    """(kind, table, columns) of one file, from its first row or its schema; errors name it."""
    import duckdb

    path = _sql_string(str(file.path))
    try:
        if file.format == "json":
            first = con.execute(f"SELECT json FROM read_json_objects({path}, format='auto') LIMIT 1").fetchone()
            if first is None:
                return "empty", None, {}
            keys = {row[0]: "JSON" for row in con.execute("SELECT unnest(json_keys(?::JSON))", [first[0]]).fetchall()}
            if {"category", "properties"} <= set(keys):
                return "envelopes", None, keys
            kind = "json"
        else:
            reader = f"read_parquet({path})" if file.format == "parquet" else f"read_csv({path}, header=true)"
            keys = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
            kind = file.format
    except duckdb.Error as exc:
        raise _unreadable(file, exc) from None
    table = file.table or _table_from_columns(file, set(keys))
    _require_columns(file, table, set(keys))
    return kind, table, keys


def _unreadable(file: DataFile, exc: Exception) -> DataError:
    # DuckDB's first line says what is wrong; the rest is the SQL it was running.
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{file.path}: cannot read it as Defender {file.format.upper()} data: {reason}")


def _table_from_columns(file: DataFile, columns: set[str]) -> str:
    lowered = {c.lower() for c in columns}
    for table, signature in _SIGNATURE.items():
        if all(c.lower() in lowered for c in signature):
            return table
    raise DataError(f"{file.path}: unrecognised rows: neither DeviceNetworkEvents (ActionType and RemoteIP "
                    "columns) nor DeviceNetworkInfo (IPAddresses column), and the file name names neither table "
                    "(another table's export? move it out of the data folder)")


@dataclass(frozen=True)
class Progress:
    """How far a load has got: `done` of `total` files, and of the statement reading them."""

    done: int
    total: int
    fraction: float  # of the current statement, 0..1
    bytes: int  # size of all files


ProgressCallback = Callable[[Progress], None]


def load_folder(folder: Path, progress: ProgressCallback | None = None) -> Any:
    """A fresh in-memory DuckDB connection whose `DeviceNetworkEvents` and `DeviceNetworkInfo`
    are views: Parquet files are scanned where they are (so the query's time and device
    filters reach the scan), the other formats are read once into tables."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = data_files(folder)
    batches: dict[tuple[Any, ...], list[DataFile]] = {}
    for file in files:
        kind, table, present = _sniff(con, file)
        if kind != "empty":
            columns = tuple(sorted(present.items())) if kind in ("csv", "parquet") else ()
            batches.setdefault((kind, table, columns), []).append(file)
    for table, columns in TABLES.items():
        con.execute(f"CREATE TABLE {table}_loaded ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    parts: dict[str, list[str]] = {t: [f"SELECT * FROM {t}_loaded"] for t in TABLES}
    total, size, done = len(files), sum(f.path.stat().st_size for f in files), 0
    for (kind, table, present), members in batches.items():
        batch = Batch(kind, table, present, tuple(members))
        if kind == "parquet":
            for name, select in batch.selects().items():
                parts[name].append(select)
        else:
            _run_batch(con, batch, lambda fraction: progress and progress(Progress(done, total, fraction, size)))
        done += len(members)
        if progress:
            progress(Progress(done, total, 1.0, size))
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS {' UNION ALL '.join(parts[table])}")
    # A table missing or empty would answer without error, and wrongly: "no connections",
    # or every address "with no Defender device".
    missing = [t for t in TABLES if not con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchall()]
    if missing:
        raise DataError(f"{folder}: no {' and no '.join(missing)} data (no file, or only empty ones); the query "
                        "needs rows of both tables (files named after the table, flat rows with its columns, "
                        "or streaming-API envelopes)")
    return con


def _run_batch(con: Any, batch: Batch, report: Callable[[float], Any]) -> None:
    """Insert one batch's rows; a failure is narrowed down to the file that caused it."""
    import duckdb

    try:
        with _polling(con, report):
            if batch.kind == "envelopes":
                # Staged once, so the compressed files are read once for both tables.
                reader = batch.reader()
                con.execute(f"CREATE TEMP TABLE envelopes AS SELECT * FROM {reader} "
                            f"WHERE category IN ({', '.join(_sql_string('AdvancedHunting-' + t) for t in TABLES)})")
                for table in TABLES:
                    staged = "temp.envelopes WHERE category = " + _sql_string("AdvancedHunting-" + table)
                    con.execute(f"INSERT INTO {table}_loaded {_struct_select(table, staged)}")
                con.execute("DROP TABLE temp.envelopes")
            else:
                for table, select in batch.selects().items():
                    con.execute(f"INSERT INTO {table}_loaded {select}")
    except duckdb.Error as exc:
        for file in batch.files:
            try:
                for select in batch.selects((file,)).values():
                    con.execute(f"SELECT count(*) FROM ({select})").fetchall()
            except duckdb.Error as file_exc:
                raise _unreadable(file, file_exc) from None
        raise _unreadable(batch.files[0], exc) from None


@contextmanager
def _polling(con: Any, report: Callable[[float], Any]) -> Iterator[None]:
    """Report DuckDB's own progress through the running statement, from a second thread."""
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    finished = threading.Event()

    def poll() -> None:
        while not finished.wait(0.25):
            fraction = con.query_progress()
            if fraction >= 0:
                report(fraction / 100)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()


def open_database(path: Path) -> Any:
    """A DuckDB file written by `import_folder`, opened read-only."""
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
        present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    except duckdb.Error as exc:
        raise DataError(f"{path}: cannot open it as a DuckDB database: {exc}") from None
    missing = sorted(set(TABLES) - present)
    if missing:
        con.close()
        raise DataError(f"{path}: not a database written by `triage import` (no table {', '.join(missing)})")
    return con


def import_folder(folder: Path, into: Path, progress: ProgressCallback | None = None) -> dict[str, int]:
    """Read the folder once and write its tables to a DuckDB file, time-ordered so that a
    query's window skips most of it; returns the rows per table."""
    import duckdb

    con = load_folder(folder, progress)
    # Ordering a large export would otherwise hold all of it in memory; past this, DuckDB
    # spills to disk next to the output and a laptop stays usable.
    con.execute(f"SET temp_directory = {_sql_string(str(into.parent / (into.name + '.tmp')))}")
    con.execute("SET memory_limit = '1GB'")
    partial = into.with_name(into.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        con.execute(f"ATTACH {_sql_string(str(partial))} AS target")
        counts = {}
        for table in TABLES:
            with _polling(con, lambda fraction: progress and progress(Progress(0, 0, fraction, 0))):
                con.execute(f"CREATE TABLE target.{table} AS SELECT * FROM {table} ORDER BY TimeGenerated")
            counts[table] = con.execute(f"SELECT count(*) FROM target.{table}").fetchone()[0]
        con.execute("DETACH target")
        con.close()
        partial.replace(into)
    except (duckdb.Error, OSError) as exc:
        con.close()
        partial.unlink(missing_ok=True)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{into}: cannot write the database: {reason}") from None
    return counts
