"""The KQL files and their safe binding (SPEC section 2: values only as safe literals)."""

from datetime import datetime, timezone

import duckdb_kql
import pytest

from triage import query
from triage.incident import DeviceSelector
from triage.window import Window

WINDOW = Window(datetime(2026, 3, 7, 13, tzinfo=timezone.utc), datetime(2026, 3, 10, 14, 0, 0, 123456, tzinfo=timezone.utc))
HOSTILE = ['ws01" | take 1 //', "a\\", '\\"; DeviceNetworkEvents | take 1; print "', "it's", "ünïcødé", '"""']


def params(value="ws01", kind="hostname"):
    return query.Parameters(DeviceSelector(kind, value), WINDOW, ("sensendr.exe",), ("local service",))


@pytest.mark.parametrize("name", [query.LATERAL_MOVEMENT, query.MATCHED_DEVICES])
def test_templates_are_valid_kql_as_written_and_bound(name):
    assert duckdb_kql.validate(query.template(name)) == []
    bound = query.lateral_movement(params()) if name == query.LATERAL_MOVEMENT else query.matched_devices(params())
    assert duckdb_kql.validate(bound) == []


def test_binding_changes_only_the_parameter_block():
    text = query.template(query.LATERAL_MOVEMENT)
    bound = query.lateral_movement(params("ws-99"))
    head, tail = text.split("// --- end parameters ---\n")
    assert bound.endswith(tail)
    block = bound[: len(bound) - len(tail)]
    assert block.count("\nlet ") + block.startswith("let ") == len(query.parameter_names(query.LATERAL_MOVEMENT))
    assert 'let SelectorValue = "ws-99";' in block
    assert "let WindowEnd = datetime(2026-03-10T14:00:00.123456Z);" in block
    assert 'let ExcludedProcesses = dynamic(["sensendr.exe"]);' in block


@pytest.mark.parametrize("value", HOSTILE)
def test_a_string_literal_reads_back_as_exactly_the_value(value):
    con = duckdb_kql.connect()
    assert duckdb_kql.query(con, f"print v = {query.literal(value)}").fetchall() == [(value,)]


def test_a_list_literal_reads_back_as_exactly_the_values():
    con = duckdb_kql.connect()
    rows = duckdb_kql.query(con, f"print v = {query.literal(HOSTILE)} | mv-expand v | project v = tostring(v)").fetchall()
    assert [r[0] for r in rows] == HOSTILE


@pytest.mark.parametrize("value", ["ws01\n| take 1", "a\rb", "a\x00b"])
def test_control_characters_are_refused(value):
    with pytest.raises(ValueError, match="control characters"):
        query.literal(value)


def test_bind_wants_exactly_the_declared_parameters():
    with pytest.raises(ValueError, match="takes parameters"):
        query.bind(query.MATCHED_DEVICES, {"SelectorKind": "fqdn"})


def test_a_host_name_is_narrowed_to_the_devices_it_matched():
    p = params("ws01")
    within = query.narrowed(p, ["ws01.corp.local", "WS01"])
    before = query.baseline_window(p.window, 14)
    for text in (query.lateral_movement(within), query.failed_connections(within), query.baseline(within, before)):
        assert 'let SelectorKind = "devices";' in text and 'let DeviceNames = dynamic(["ws01.corp.local", "WS01"]);' in text
    assert 'let SelectorKind = "hostname";' in query.failed_connections(params("ws01"))
    # Device ids and FQDNs are already exact: nothing to narrow.
    assert query.narrowed(params("abc123", "deviceId"), ["x"]) == params("abc123", "deviceId")
    assert query.narrowed(p, []) == p
