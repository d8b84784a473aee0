"""SPEC section 4, rule by rule, on small exports built by the tests (embedded engine)."""

from datetime import datetime, timezone

import pytest

from builders import at, event, incident, info, write_folder
from triage import pipeline
from triage.config import Settings
from triage.embedded import EmbeddedEngine
from triage.exports import load_folder
from triage.incident import Overrides

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
WS01 = {"hostName": "ws01"}


def triage(tmp_path, events, infos=(), host=WS01, settings=Settings(), overrides=None):
    engine = EmbeddedEngine(load_folder(write_folder(tmp_path / "data", events, infos)))
    return pipeline.run(incident(host), lambda _: engine, settings, NOW, overrides)


def rows(outcome, device=None):
    host = outcome.result.hosts[0]
    return [c for d in host.devices if device in (None, d.device_name) for c in d.connections]


def test_host_name_matches_exact_or_dotted_prefix_only(tmp_path):
    events = [event("ws01", "10.0.0.1"), event("WS01.corp.local", "10.0.0.2"),
              event("ws010.corp.local", "10.0.0.3"), event("xws01", "10.0.0.4")]
    host = triage(tmp_path, events).result.hosts[0]
    assert host.status == "ambiguous"
    assert {d.device_name: [c.RemoteIP for c in d.connections] for d in host.devices} == \
        {"WS01.corp.local": ["10.0.0.2"], "ws01": ["10.0.0.1"]}


def test_device_id_and_fqdn_selectors(tmp_path):
    events = [event("ws01.corp.local", "10.0.0.1", device_id="abcdef0123"), event("ws01.other.local", "10.0.0.2")]
    by_id = triage(tmp_path / "a", events, host={"hostName": "ws01", "MdatpDeviceId": "ABCDEF0123"}).result.hosts[0]
    assert (by_id.status, [c.RemoteIP for c in by_id.devices[0].connections]) == ("found", ["10.0.0.1"])
    by_fqdn = triage(tmp_path / "b", events, host={"hostName": "WS01", "dnsDomain": "OTHER.local"}).result.hosts[0]
    assert [c.RemoteIP for d in by_fqdn.devices for c in d.connections] == ["10.0.0.2"]


def test_device_not_found_is_not_no_connections(tmp_path):
    outcome = triage(tmp_path, [event("ws02", "10.0.0.1")])
    assert outcome.result.hosts[0].status == "device_not_found"
    assert "no Defender device matched" in outcome.comment_html


def test_found_device_with_only_public_traffic_has_no_rows(tmp_path):
    outcome = triage(tmp_path, [event("ws01", "8.8.8.8")])
    host = outcome.result.hosts[0]
    assert (host.status, host.devices[0].device_name, host.devices[0].connections) == ("found", "ws01", ())
    assert "no successful connections to internal addresses" in outcome.comment_html


@pytest.mark.parametrize("ip, kept", [
    ("10.0.0.0", True), ("10.255.255.255", True), ("172.16.0.0", True), ("172.31.255.255", True),
    ("192.168.0.1", True), ("::FFFF:192.168.1.1", True), ("172.15.255.255", False), ("172.32.0.0", False),
    ("192.169.0.1", False), ("11.0.0.1", False), ("169.254.1.1", False), ("fe80::1", False), ("100.64.0.1", False),
])
def test_rfc1918_only_after_normalising_mapped_addresses(tmp_path, ip, kept):
    found = [c.RemoteIP for c in rows(triage(tmp_path, [event("ws01", ip)]))]
    assert found == ([ip.lower().removeprefix("::ffff:")] if kept else [])


def test_only_successful_connections_count(tmp_path):
    events = [event("ws01", "10.0.0.1", action=a) for a in ("ConnectionFailed", "ConnectionAttempt", "InboundConnectionAccepted")]
    assert rows(triage(tmp_path, events)) == []


def test_exclusions_are_case_insensitive_and_configurable(tmp_path):
    events = [event("ws01", "10.0.0.1", process="SenseNdr.EXE"), event("ws01", "10.0.0.2", account="LOCAL SERVICE"),
              event("ws01", "10.0.0.3", process="backup.exe")]
    assert [c.RemoteIP for c in rows(triage(tmp_path / "a", events))] == ["10.0.0.3"]
    custom = Settings(excluded_processes=("backup.exe",), excluded_accounts=())
    assert sorted(c.RemoteIP for c in rows(triage(tmp_path / "b", events, settings=custom))) == ["10.0.0.1", "10.0.0.2"]


def test_window_bounds_are_inclusive(tmp_path):
    # The incident runs T0 .. T0+60min; with no lookback/follow-up the window is exactly that.
    events = [event("ws01", "10.0.0.1", minutes=0), event("ws01", "10.0.0.2", minutes=60),
              event("ws01", "10.0.0.3", minutes=-0.001), event("ws01", "10.0.0.4", minutes=60.001)]
    found = rows(triage(tmp_path, events, overrides=Overrides(lookback_hours=0, followup_hours=0)))
    assert sorted(c.RemoteIP for c in found) == ["10.0.0.1", "10.0.0.2"]


def test_one_row_per_address_with_aggregates_from_the_latest_row(tmp_path):
    events = [event("ws01", "10.0.0.1", port=3389, minutes=5, process="mstsc.exe"),
              event("ws01", "::ffff:10.0.0.1", port=445, minutes=20, process="net.exe", account="bob", RemoteUrl="fs01"),
              event("ws01", "10.0.0.1", port=445, minutes=10),
              event("ws01", "10.0.0.9", port=22, minutes=30)]
    first, second = rows(triage(tmp_path, events))
    assert first.RemoteIP == "10.0.0.9"  # LastSeen descending
    assert (second.ConnectedPorts, second.ConnectionCount) == ((445, 3389), 3)
    assert (second.FirstSeen.isoformat(), second.LastSeen.isoformat()) == (
        at(5).replace("Z", "+00:00"), at(20).replace("Z", "+00:00"))
    assert (second.InitiatingProcessFileName, second.InitiatingProcessAccountUpn, second.RemoteUrl) == (
        "net.exe", "bob@corp.local", "fs01")
    assert first.RemoteUrl is None  # empty string and null are the same


def test_remote_device_is_the_holder_at_the_latest_connection(tmp_path):
    events = [event("ws01", "10.0.0.50", minutes=30)]
    infos = [info("lt-1", ["10.0.0.50"], minutes=-300), info("lt-2", ["10.0.0.50"], minutes=20),
             info("lt-3", ["10.0.0.50"], minutes=40)]
    (row,) = rows(triage(tmp_path, events, infos))
    assert (row.RemoteDeviceName, row.RemoteDeviceCandidates) == ("lt-2", ("lt-1", "lt-2", "lt-3"))


def test_no_report_before_takes_the_earliest_after_and_ties_take_the_smallest_name(tmp_path):
    events = [event("ws01", "10.0.0.50", minutes=0)]
    infos = [info("zz", ["10.0.0.50"], minutes=10), info("bb", ["10.0.0.50"], minutes=10), info("aa", ["10.0.0.50"], minutes=50)]
    (row,) = rows(triage(tmp_path, events, infos))
    assert row.RemoteDeviceName == "bb"


def test_every_address_of_a_report_counts_and_apipa_is_ignored(tmp_path):
    events = [event("ws01", "10.0.0.7"), event("ws01", "192.168.9.9", minutes=1)]
    infos = [info("srv", ["fe80::1", "169.254.9.9", "10.0.0.7", "::ffff:192.168.9.9"], as_string=False)]
    assert {c.RemoteIP: c.RemoteDeviceName for c in rows(triage(tmp_path, events, infos))} == \
        {"10.0.0.7": "srv", "192.168.9.9": "srv"}


def test_address_without_device_is_kept_and_own_address_dropped(tmp_path):
    events = [event("ws01", "10.0.0.1"), event("ws01", "10.0.0.2", minutes=1)]
    infos = [info("WS01", ["10.0.0.1"]), info("other", ["10.0.0.99"])]
    found = rows(triage(tmp_path, events, infos))
    assert [(c.RemoteIP, c.RemoteDeviceName, c.RemoteDeviceCandidates) for c in found] == [("10.0.0.2", None, ())]


def test_reports_outside_the_window_are_not_used(tmp_path):
    events = [event("ws01", "10.0.0.5", minutes=0)]
    infos = [info("old", ["10.0.0.5"], minutes=-60 * 24 * 3)]
    (row,) = rows(triage(tmp_path, events, infos))
    assert row.RemoteDeviceName is None


def test_time_generated_exports_work_like_timestamp_exports(tmp_path):
    events = [event("ws01", "10.0.0.5", time_column="TimeGenerated")]
    infos = [info("srv", ["10.0.0.5"], time_column="TimeGenerated")]
    assert [c.RemoteDeviceName for c in rows(triage(tmp_path, events, infos))] == ["srv"]


def test_no_host_entity_is_skipped_with_a_comment(tmp_path):
    body = incident(WS01)
    body["object"]["properties"]["relatedEntities"] = [{"kind": "Account", "properties": {"accountName": "a"}}]
    engine = EmbeddedEngine(load_folder(write_folder(tmp_path / "d", [event()])))
    outcome = pipeline.run(body, lambda _: engine, Settings(), NOW)
    assert outcome.result.status == "skipped"
    assert "no Host entity" in outcome.comment_html
