"""Exported Defender data (SPEC.md section 5, "Data folder") → DuckDB tables.

Every file is read by DuckDB itself (JSON, CSV, Parquet, gzip or not): no Python loop
over events. Only the columns the queries use are kept, under their Sentinel names
(`Timestamp` becomes `TimeGenerated`), so the KQL text is the same as in Log Analytics.
"""

from __future__ import annotations

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
_SIGNATURE = {"DeviceNetworkEvents": "ActionType", "DeviceNetworkInfo": "IPAddresses"}
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
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: the data folder has no files")
    return [classify(p) for p in files]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _time(expr: str) -> str:
    # Through TIMESTAMPTZ so that offsets in the text are honoured; the session is UTC.
    return f"CAST(CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"


def _require_columns(file: DataFile, table: str, present: set[str]) -> None:
    """A file named after a table but without its key columns would silently read as no rows."""
    lowered = {c.lower() for c in present}
    missing = [c for c in ("DeviceName", _SIGNATURE[table]) if c.lower() not in lowered]
    if not {"timegenerated", "timestamp"} & lowered:
        missing.insert(0, "Timestamp or TimeGenerated")
    if missing:
        raise DataError(f"{file.path}: {table} rows without column(s) {', '.join(missing)}")


def _json_select(table: str, source: str) -> str:
    """Rows of `table` from JSON objects `r` (flat rows or envelope properties)."""
    cols = []
    for column, type_ in TABLES[table].items():
        if column == "TimeGenerated":
            time = _time("coalesce(r->>'TimeGenerated', r->>'Timestamp')")
            cols.append(f"{time} AS TimeGenerated")
        elif column == "IPAddresses":
            # A JSON array, or a string holding one (as the streaming API sends it).
            cols.append("CASE WHEN json_type(r->'IPAddresses') = 'VARCHAR' THEN r->>'IPAddresses' "
                        "ELSE CAST(r->'IPAddresses' AS VARCHAR) END AS IPAddresses")
        else:
            cols.append(f"CAST(r->>'{column}' AS {type_}) AS {column}")
    return f"SELECT {', '.join(cols)} FROM {source}"


def _columnar_select(table: str, source: str, present: set[str]) -> str:
    lowered = {c.lower(): c for c in present}
    cols = []
    for column, type_ in TABLES[table].items():
        found = lowered.get(column.lower())
        if column == "TimeGenerated":
            found = found or lowered.get("timestamp")
            expr = _time(f'"{found}"') if found else "NULL"
        else:
            expr = f'CAST("{found}" AS {type_})' if found else f"CAST(NULL AS {type_})"
        cols.append(f"{expr} AS {column}")
    return f"SELECT {', '.join(cols)} FROM {source}"


def create_tables(con: Any) -> None:
    for table, columns in TABLES.items():
        con.execute(f"CREATE OR REPLACE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")


def load_file(con: Any, file: DataFile) -> None:
    """Append one file's rows to the tables; any failure names the file."""
    import duckdb

    path = _sql_string(str(file.path))
    try:
        if file.format == "json":
            _load_json(con, file, path)
        else:
            reader = f"read_parquet({path})" if file.format == "parquet" else f"read_csv({path}, header=true)"
            present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
            table = file.table or _table_from_columns(file, present)
            _require_columns(file, table, present)
            con.execute(f"INSERT INTO {table} {_columnar_select(table, reader, present)}")
    except duckdb.Error as exc:
        raise DataError(f"{file.path}: cannot read it as Defender {file.format.upper()} data: {exc}") from None


def _load_json(con: Any, file: DataFile, path: str) -> None:
    objects = f"read_json_objects({path}, format='auto')"
    first = con.execute(f"SELECT json FROM {objects} LIMIT 1").fetchone()
    if first is None:
        return
    keys = {row[0] for row in con.execute("SELECT unnest(json_keys(?::JSON))", [first[0]]).fetchall()}
    if {"category", "properties"} <= keys:
        # Streaming-API envelopes; tables may be mixed in one file, others are ignored.
        for table in TABLES:
            source = (f"(SELECT json->'properties' AS r FROM {objects} "
                      f"WHERE json->>'category' = 'AdvancedHunting-{table}')")
            con.execute(f"INSERT INTO {table} {_json_select(table, source)}")
        return
    table = file.table or _table_from_columns(file, keys)
    _require_columns(file, table, keys)
    con.execute(f"INSERT INTO {table} {_json_select(table, f'(SELECT json AS r FROM {objects})')}")


def _table_from_columns(file: DataFile, columns: set[str]) -> str:
    lowered = {c.lower() for c in columns}
    for table, signature in _SIGNATURE.items():
        if signature.lower() in lowered:
            return table
    raise DataError(f"{file.path}: unrecognised rows: neither DeviceNetworkEvents (no ActionType column) "
                    "nor DeviceNetworkInfo (no IPAddresses column), and the file name names neither table")


def load_folder(folder: Path) -> Any:
    """A fresh in-memory DuckDB connection holding the folder's Defender tables."""
    import duckdb_kql

    con = duckdb_kql.connect()
    create_tables(con)
    for file in data_files(folder):
        load_file(con, file)
    return con
