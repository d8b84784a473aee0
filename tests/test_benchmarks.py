"""The benchmark's three implementations give the same answer on its generated data."""

from pathlib import Path

import pytest

from benchmarks import baselines
from benchmarks.generate import Size, generate
from benchmarks.measure import embedded, open_data, parameters, product


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    generate(folder, Size(devices=60, days=3, events_per_device_day=40))
    return folder


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_embedded_sql_and_pandas_agree(export, fmt):
    payload, p = parameters(export / "incident.json")
    con = open_data(export / fmt)
    answer = embedded(con, p)
    assert baselines.handwritten_sql(con, p) == answer
    assert baselines.with_pandas(*baselines.read_with_pandas(export / fmt), p) == answer
    assert product(con, payload) == answer


def test_generated_export_has_what_the_query_must_handle(export):
    _, p = parameters(export / "incident.json")
    answer = embedded(open_data(export / "parquet"), p)
    assert answer.devices == ("ws-00040.corp.contoso.com",)
    assert len(answer.rows) == 17
    by_ip = {row.RemoteIP: row for row in answer.rows}
    # Lateral movement to a workstation whose address two others held earlier (DHCP reuse).
    lateral = by_ip["10.1.0.38"]
    assert lateral.RemoteDeviceName == "ws-00044.corp.contoso.com"
    assert lateral.RemoteDeviceCandidates == ("ws-00044.corp.contoso.com", "ws-00051.corp.contoso.com",
                                              "ws-00058.corp.contoso.com")
    assert (lateral.ConnectedPorts, lateral.ConnectionCount, lateral.InitiatingProcessFileName) == ((445,), 4, "mstsc.exe")
    # A server reached over an IPv4-mapped address is one row with the plain address.
    assert "10.0.0.1" in by_ip and not any(ip.lower().startswith("::ffff:") for ip in by_ip)
    # Pool addresses nobody held are kept, without a device.
    assert any(row.RemoteDeviceName is None for row in answer.rows)
    # The excluded sensor process and local service account never show.
    assert not {row.InitiatingProcessFileName.lower() for row in answer.rows if row.InitiatingProcessFileName} & {"sensendr.exe"}
