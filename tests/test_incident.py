"""Input shapes (SPEC section 5), Host entity → selector (section 2), window (section 3)."""

import copy
from datetime import datetime, timedelta, timezone

import pytest

from conftest import EXAMPLES, load_json
from triage.config import Settings
from triage.errors import BadInput
from triage.incident import DeviceSelector, Overrides, host_from_properties, hosts_from_entities, loads, parse_incident
from triage.window import search_window

TRIGGER = load_json(EXAMPLES / "otrf-psexec" / "incident.json")
ARM_ID = TRIGGER["object"]["id"]
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_trigger_body():
    incident = parse_incident(TRIGGER)
    assert incident.arm_id == ARM_ID
    assert incident.number == 4217
    assert incident.workspace_id == "0f8e2b6a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"
    assert [h.selector for h in incident.hosts] == [DeviceSelector("deviceId", "be279f07c29d5bb7369b2c2c63828186a94f50b6")]


def test_body_wrapper_and_resource_give_the_same_incident():
    plain = parse_incident(TRIGGER)
    assert parse_incident({"body": TRIGGER}) == plain
    resource = parse_incident(TRIGGER["object"])
    assert (resource.arm_id, resource.hosts, resource.first_activity) == (plain.arm_id, plain.hosts, plain.first_activity)


def test_minimal_request_needs_the_entities_fetched():
    incident = parse_incident({"incidentArmId": ARM_ID.replace("/Incidents/", "/incidents/")})
    assert incident.entities_missing and incident.hosts == ()
    assert incident.name == "9aef0860-2403-5ecc-87eb-79a551d91477"


@pytest.mark.parametrize("payload, words", [
    ({}, "empty object"),
    ([], "must be a JSON object"),
    ({"hello": 1}, "not a Sentinel incident"),
    ({"incidentArmId": "sentinel-prod/4217"}, "incident resource id"),
    ({"object": "x"}, '"object" must be'),
    ({"id": ARM_ID, "properties": {"relatedEntities": {"kind": "Host"}}}, "relatedEntities must be a list"),
    ({"id": ARM_ID, "properties": {"firstActivityTimeUtc": "yesterday"}}, "not an ISO 8601 time"),
])
def test_malformed_requests_name_the_problem(payload, words):
    with pytest.raises(BadInput, match=words):
        parse_incident(payload)


@pytest.mark.parametrize("text, words", [(b"", "empty"), ("  ", "empty"), ("{not json", "not valid JSON"),
                                         (b"\xff\xfe", "not UTF-8")])
def test_non_json_bodies(text, words):
    with pytest.raises(BadInput, match=words):
        loads(text)


def test_related_entities_null_is_a_request_without_entities():
    body = copy.deepcopy(TRIGGER)
    body["object"]["properties"]["relatedEntities"] = None
    incident = parse_incident(body)
    assert incident.hosts == () and incident.entities_missing


@pytest.mark.parametrize("props, expected", [
    # device id wins, top level or under additionalData, either property name, any case
    ({"hostName": "ws01", "MdatpDeviceId": "AB12CD34EF"}, ("deviceId", "ab12cd34ef")),
    ({"HostName": "ws01", "AdditionalData": {"MdeDeviceId": "ab12cd34ef56"}}, ("deviceId", "ab12cd34ef56")),
    # then FQDN: additionalData.FQDN, hostName + dnsDomain, a dotted hostName
    ({"hostName": "ws01", "dnsDomain": "corp.local", "additionalData": {"FQDN": "WS01.Other.Local"}}, ("fqdn", "ws01.other.local")),
    ({"hostName": "ws-fin-07", "dnsDomain": "CONTOSO.LOCAL"}, ("fqdn", "ws-fin-07.contoso.local")),
    ({"HostName": "ws01.corp.local"}, ("fqdn", "ws01.corp.local")),
    ({"hostName": "ws01", "dnsDomain": ""}, ("hostname", "ws01")),
    # then host name, NetBIOS name, friendly name
    ({"netBiosName": "WS02"}, ("hostname", "ws02")),
    ({"friendlyName": "ws03"}, ("hostname", "ws03")),
])
def test_selector_rules(props, expected):
    assert host_from_properties(props).selector == DeviceSelector(*expected)


@pytest.mark.parametrize("name", ['ws01"|take 1//', "ws01\nDeviceNetworkEvents", "ws 01", "ws01;drop", "-ws01", "a" * 300, "ws01..corp", 42])
def test_implausible_host_names_are_never_searched(name):
    host = host_from_properties({"hostName": name})
    assert host.selector is None and "is not a plausible host name" in host.problem


def test_hostile_device_id_is_never_searched():
    host = host_from_properties({"hostName": "ws01", "MdatpDeviceId": 'x" or 1==1'})
    assert (host.name, host.selector) == ("ws01", None) and "is not a Defender device id" in host.problem


def test_surrounding_spaces_are_not_part_of_a_name():
    assert host_from_properties({"hostName": " WS-FIN-07 ", "dnsDomain": "contoso.local "}).selector == \
        DeviceSelector("fqdn", "ws-fin-07.contoso.local")
    assert host_from_properties({"hostName": "ws01 ", "dnsDomain": "  "}).selector == DeviceSelector("hostname", "ws01")


def test_one_implausible_host_does_not_stop_the_others():
    hosts = hosts_from_entities([{"kind": "Host", "properties": {"hostName": "WS-FIN-07 (old)"}},
                                 {"kind": "Host", "properties": {"hostName": "ws-fin-07"}}])
    assert [(h.name, h.selector) for h in hosts] == [("WS-FIN-07 (old)", None),
                                                      ("ws-fin-07", DeviceSelector("hostname", "ws-fin-07"))]


def test_host_entity_without_any_name_is_unidentified_not_an_error():
    host = host_from_properties({"osFamily": "Windows"})
    assert host.selector is None and "no device id" in host.problem


def test_a_host_repeated_by_merged_alerts_is_searched_once():
    body = copy.deepcopy(TRIGGER)
    entities = body["object"]["properties"]["relatedEntities"]
    entities.append(copy.deepcopy(entities[0]))
    entities.append({"kind": "Host", "properties": {"hostName": "WS09"}})
    assert [h.selector.value for h in parse_incident(body).hosts] == ["be279f07c29d5bb7369b2c2c63828186a94f50b6", "ws09"]


def test_entities_of_other_kinds_are_ignored():
    body = load_json(EXAMPLES / "edge-a" / "incident.json")
    assert [h.name for h in parse_incident(body).hosts] == ["ws-fin-07"]


def test_window_from_activity_times():
    w = search_window(parse_incident(TRIGGER), Settings(), NOW)
    assert (w.start.isoformat(), w.end.isoformat()) == ("2020-09-18T16:16:58.794000+00:00", "2020-09-21T16:17:05.701000+00:00")


def test_window_end_never_after_now():
    now = datetime(2020, 9, 20, 18, 0, tzinfo=timezone.utc)
    assert search_window(parse_incident(TRIGGER), Settings(), now).end == now


def test_window_falls_back_to_created_then_now():
    body = copy.deepcopy(TRIGGER)
    props = body["object"]["properties"]
    del props["firstActivityTimeUtc"], props["lastActivityTimeUtc"]
    w = search_window(parse_incident(body), Settings(lookback_hours=1, followup_hours=1), NOW)
    assert (w.start.isoformat(), w.end.isoformat()) == ("2020-09-20T15:23:05.701000+00:00", "2020-09-20T17:23:05.701000+00:00")
    del props["createdTimeUtc"]
    w = search_window(parse_incident(body), Settings(lookback_hours=1, followup_hours=1), NOW)
    assert (w.start, w.end) == (datetime(2026, 11, 30, 23, tzinfo=timezone.utc), NOW)


def test_window_overrides():
    incident = parse_incident(TRIGGER)
    w = search_window(incident, Settings(), NOW, Overrides(lookback_hours=0, followup_hours=1))
    assert (w.start.isoformat(), w.end.isoformat()) == ("2020-09-20T16:16:58.794000+00:00", "2020-09-20T17:17:05.701000+00:00")
    start, end = datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2020, 1, 2, tzinfo=timezone.utc)
    assert search_window(incident, Settings(), NOW, Overrides(start=start, end=end)).start == start
    with pytest.raises(BadInput, match="window is empty"):
        search_window(incident, Settings(), NOW, Overrides(start=end, end=start))
    # An explicit end is never after now either.
    assert search_window(incident, Settings(), start, Overrides(start=start - timedelta(days=1), end=end)).end == start


def test_exclusion_settings_with_control_characters_are_refused():
    from triage.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="TRIAGE_EXCLUDED_PROCESSES must be names separated by commas"):
        Settings.from_env({"TRIAGE_EXCLUDED_PROCESSES": "a\tb.exe"})


def test_settings_defaults_are_the_documented_ones():
    # Settings() is what tests and the benchmark use; SETTINGS is what README, infra/ and
    # local.settings.example.json document. They must not drift apart.
    assert Settings() == Settings.from_env({})
