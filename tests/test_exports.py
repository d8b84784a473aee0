"""The data folder (SPEC section 5): every format gives the same answer; bad files are named."""

import gzip
import json
import shutil

import duckdb
import pytest

from conftest import EXAMPLES, load_json
from test_cases import comparable
from triage import pipeline
from triage.config import Settings
from triage.embedded import EmbeddedEngine
from triage.errors import DataError
from builders import event
from triage.exports import load_folder
from test_rules import NOW

CASE = EXAMPLES / "edge-a"  # flat rows with Timestamp
ENVELOPES = EXAMPLES / "otrf-psexec"  # streaming-API envelopes


def flat_rows(case, table):
    rows = [json.loads(line) for line in (case / "data" / f"{table}.jsonl").read_text().splitlines()]
    return [r["properties"] if "properties" in r else r for r in rows]


def assert_same_answer(case, folder):
    engine = EmbeddedEngine(load_folder(folder))
    result = pipeline.run(load_json(case / "incident.json"), lambda _: engine, Settings(), NOW).result
    assert comparable(result.to_json()) == comparable(load_json(case / "expected.json"))


def copy_as(case, folder, fmt, **options):
    """Each table written by DuckDB in another format, from the case's own rows."""
    folder.mkdir()
    con = duckdb.connect()
    for table in ("DeviceNetworkEvents", "DeviceNetworkInfo"):
        src = folder / f"{table}.src.json"
        src.write_text(json.dumps(flat_rows(case, table)))
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{src}', format='array')")
        opts = ", ".join(f"{k} {v}" for k, v in options.items())
        con.execute(f"COPY t TO '{folder / (table + '.' + fmt)}' (FORMAT {fmt.split('.')[0]}{', ' + opts if opts else ''})")
        con.execute("DROP TABLE t")
        src.unlink()
    return folder


@pytest.mark.parametrize("fmt, options", [("csv", {}), ("parquet", {}), ("csv.gz", {"COMPRESSION": "gzip"})])
def test_columnar_formats(tmp_path, fmt, options):
    assert_same_answer(CASE, copy_as(CASE, tmp_path / "d", fmt, **options))


@pytest.mark.parametrize("time_type", ["TIMESTAMP", "TIMESTAMPTZ", "VARCHAR"])
def test_parquet_time_column_of_any_type(tmp_path, time_type):
    # Defender exports written by other tools carry the time as an instant (TIMESTAMPTZ),
    # a UTC wall time or text; the first two are used as they are (row-group pruning).
    folder = tmp_path / "d"
    folder.mkdir()
    con = duckdb.connect()
    # The writer's zone must not matter for an instant; a wall time is written as UTC.
    con.execute(f"SET TimeZone = '{'UTC' if time_type == 'TIMESTAMP' else 'Europe/Paris'}'")
    for table in ("DeviceNetworkEvents", "DeviceNetworkInfo"):
        src = tmp_path / f"{table}.json"
        src.write_text(json.dumps(flat_rows(CASE, table)))
        con.execute(f"COPY (SELECT * REPLACE (CAST(CAST(Timestamp AS TIMESTAMPTZ) AS {time_type}) AS Timestamp) "
                    f"FROM read_json('{src}', format='array', columns={{Timestamp: 'VARCHAR', DeviceId: 'VARCHAR', "
                    f"DeviceName: 'VARCHAR', ActionType: 'VARCHAR', RemoteIP: 'VARCHAR', RemotePort: 'INTEGER', "
                    f"RemoteUrl: 'VARCHAR', InitiatingProcessFileName: 'VARCHAR', InitiatingProcessAccountName: 'VARCHAR', "
                    f"InitiatingProcessAccountSid: 'VARCHAR', InitiatingProcessAccountUpn: 'VARCHAR', IPAddresses: 'VARCHAR'}})) "
                    f"TO '{folder / (table + '.parquet')}' (FORMAT parquet)")
    assert_same_answer(CASE, folder)


def test_json_array_and_gzip_jsonl(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "DeviceNetworkEvents.json").write_text(json.dumps(flat_rows(CASE, "DeviceNetworkEvents")))
    with gzip.open(folder / "DeviceNetworkInfo.jsonl.gz", "wt") as out:
        out.writelines(json.dumps(r) + "\n" for r in flat_rows(CASE, "DeviceNetworkInfo"))
    assert_same_answer(CASE, folder)


def test_envelopes_mixed_in_one_file_with_other_tables(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    lines = []
    for table in ("DeviceNetworkInfo", "DeviceNetworkEvents"):
        lines += (ENVELOPES / "data" / f"{table}.jsonl").read_text().splitlines()
    lines.insert(3, json.dumps({"category": "AdvancedHunting-DeviceInfo", "properties": {"DeviceName": "x", "OSPlatform": "Windows"}}))
    (folder / "export-2020-09-20.jsonl").write_text("\n".join(lines[::-1]) + "\n")
    assert_same_answer(ENVELOPES, folder)


def test_flat_file_with_another_name_is_recognised_by_its_columns(tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(CASE / "data", folder)
    (folder / "DeviceNetworkEvents.jsonl").rename(folder / "advanced-hunting-result.jsonl")
    assert_same_answer(CASE, folder)


@pytest.mark.parametrize("name, content, words", [
    ("notes.txt", "hello", "not a Defender export"),
    ("DeviceNetworkEvents.jsonl.gz", "not gzip at all", "cannot read it"),
    ("DeviceNetworkEvents.jsonl", json.dumps(event() | {"Timestamp": "yesterday"}) + "\n", "cannot read it"),
    ("DeviceNetworkEvents-2.jsonl", json.dumps(event() | {"RemotePort": "http"}) + "\n", "cannot read it"),
    ("results.jsonl", '{"Foo": 1}\n', "unrecognised rows"),
    # DeviceProcessEvents rows have ActionType but no RemoteIP: not taken for network events.
    ("export1.json", json.dumps([{"Timestamp": "2026-03-09T00:00:00Z", "DeviceName": "x", "ActionType": "ProcessCreated",
                                  "FileName": "cmd.exe"}]), "unrecognised rows"),
    ("DeviceNetworkEvents.csv", "Time,Device\n2026-03-09,ws01\n",
     "without column.s. Timestamp or TimeGenerated, DeviceId, DeviceName, ActionType, RemoteIP, RemotePort, "
     "InitiatingProcessFileName, InitiatingProcessAccountName$"),
    # Without the process column the excluded-process rule would silently stop applying.
    ("DeviceNetworkEvents.csv", "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,InitiatingProcessAccountName\n",
     "without column.s. InitiatingProcessFileName$"),
    ("DeviceNetworkInfo.jsonl", '{"Timestamp": "2026-03-09T00:00:00Z", "DeviceName": "x"}\n', "without column.s. DeviceId, IPAddresses$"),
])
def test_bad_files_are_errors_naming_the_file(tmp_path, name, content, words):
    folder = tmp_path / "d"
    shutil.copytree(CASE / "data", folder)
    (folder / name).write_text(content)
    with pytest.raises(DataError, match=words) as error:
        load_folder(folder)
    assert name in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("keep", ["DeviceNetworkInfo.jsonl", "DeviceNetworkEvents.jsonl"])
def test_a_folder_without_one_of_the_tables_is_an_error(tmp_path, keep):
    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(CASE / "data" / keep, folder / keep)
    missing = "DeviceNetworkEvents" if keep == "DeviceNetworkInfo.jsonl" else "DeviceNetworkInfo"
    with pytest.raises(DataError, match=f"no {missing} data"):
        load_folder(folder)


def test_envelopes_of_other_tables_only_are_an_error(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "export.jsonl").write_text(json.dumps({"category": "AdvancedHunting-DeviceProcessEvents",
                                                     "properties": {"DeviceName": "x"}}) + "\n")
    with pytest.raises(DataError, match="no DeviceNetworkEvents and no DeviceNetworkInfo data"):
        load_folder(folder)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no such data folder"):
        load_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="takes a folder of exports"):
        load_folder(CASE / "data" / "DeviceNetworkEvents.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no files"):
        load_folder(tmp_path / "empty")


@pytest.mark.parametrize("emptied", ["DeviceNetworkEvents.jsonl", "DeviceNetworkInfo.jsonl"])
@pytest.mark.parametrize("content", ["", "\n"])
def test_an_empty_table_is_an_error_not_no_connections(tmp_path, emptied, content):
    folder = tmp_path / "d"
    shutil.copytree(CASE / "data", folder)
    (folder / emptied).write_text(content)
    with pytest.raises(DataError, match=f"no {emptied.removesuffix('.jsonl')} data"):
        load_folder(folder)


def test_a_header_only_csv_table_is_an_error(tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(CASE / "data", folder)
    (folder / "DeviceNetworkEvents.jsonl").unlink()
    (folder / "DeviceNetworkEvents.csv").write_text("Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,"
                                                     "InitiatingProcessFileName,InitiatingProcessAccountName\n")
    with pytest.raises(DataError, match="no DeviceNetworkEvents data"):
        load_folder(folder)


@pytest.mark.parametrize("offset", ["+02:00", "-05:00"])
def test_csv_times_with_an_offset_are_the_same_instants(tmp_path, offset):
    # An analyst's export in local time: each time shifted into the offset, so the instants
    # are unchanged and so must be the answer (DuckDB alone would drop the offset on insert).
    from datetime import datetime, timedelta, timezone

    hours, minutes = int(offset[:3]), int(offset[0] + offset[4:])
    zone = timezone(timedelta(hours=hours, minutes=minutes))
    folder = tmp_path / "d"
    folder.mkdir()
    con = duckdb.connect()
    for table in ("DeviceNetworkEvents", "DeviceNetworkInfo"):
        rows = flat_rows(CASE, table)
        for row in rows:
            instant = datetime.fromisoformat(row["Timestamp"].replace("Z", "+00:00"))
            row["Timestamp"] = instant.astimezone(zone).isoformat()
        assert rows[0]["Timestamp"].endswith(offset)
        src = tmp_path / f"{table}.json"
        src.write_text(json.dumps(rows))
        con.execute(f"COPY (SELECT * FROM read_json('{src}', format='array', columns={{Timestamp: 'VARCHAR', "
                    f"DeviceId: 'VARCHAR', DeviceName: 'VARCHAR', ActionType: 'VARCHAR', RemoteIP: 'VARCHAR', "
                    f"RemotePort: 'INTEGER', RemoteUrl: 'VARCHAR', InitiatingProcessFileName: 'VARCHAR', "
                    f"InitiatingProcessAccountName: 'VARCHAR', InitiatingProcessAccountSid: 'VARCHAR', "
                    f"InitiatingProcessAccountUpn: 'VARCHAR', IPAddresses: 'VARCHAR'}})) "
                    f"TO '{folder / (table + '.csv')}' (FORMAT csv)")
    assert_same_answer(CASE, folder)
