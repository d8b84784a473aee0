"""Issue 6: what the comment adds to the rows — services and admin emphasis, new destinations,
failed attempts, links, the summary line, and the follow-up plan (labels, severity, task)."""

import base64
import gzip
import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

from builders import event, info
from conftest import EXAMPLES, load_json
from test_rules import NOW, rows, triage
from dataclasses import replace

from triage import followups, pipeline
from triage.comment import render
from triage.config import Settings
from triage.embedded import EmbeddedEngine
from triage.exports import load_folder

EDGE = EXAMPLES / "edge-a"


def edge_outcome(settings=Settings()):
    engine = EmbeddedEngine(load_folder(EDGE / "data"))
    return pipeline.run(load_json(EDGE / "incident.json"), lambda _: engine, settings, NOW)


def contexts(outcome):
    return {x.RemoteIP: x for h in outcome.result.hosts for d in h.devices for x in d.context}


def test_summary_line_counts_what_the_rows_show():
    # edge-a's rows: sql02 (1433), fs01 (5985; 445+3389), lt-0412 (3389), and 10.20.30.61 (22) with no device;
    # one ConnectionFailed to .12 and one ConnectionAttempt to .13.
    outcome = edge_outcome()
    assert outcome.result.summary().to_json() == {
        "internalDevices": 3, "devicesOverAdminProtocols": 3, "adminAddressesWithoutDevice": 1,
        "addressesWithoutDevice": 1, "newDestinations": 5, "failedAttempts": 2, "failedAddresses": 2}
    first = re.match(r"<div><p>(.*?)</p>", outcome.comment_html).group(1)
    assert first == ("<b>Lateral-movement triage</b>: Reached 3 internal devices, 3 over admin protocols; "
                     "1 internal address with no Defender device in the window; "
                     "5 new destinations (not contacted in the 14 days before); "
                     "2 failed or attempted connections to 2 internal addresses.")


def test_the_summary_leaves_out_a_count_of_zero_addresses_without_device(tmp_path):
    outcome = triage(tmp_path, [event("ws01", "10.0.0.1")], [info("srv1", ["10.0.0.1"])])
    assert outcome.result.summary().to_json()["addressesWithoutDevice"] == 0
    assert "Reached 1 internal device" in outcome.comment_html and "no Defender device" not in outcome.comment_html


def test_ports_are_named_and_admin_protocols_marked():
    x = contexts(edge_outcome())
    assert (x["10.20.30.10"].Services, x["10.20.30.10"].AdminPorts) == (("445 SMB", "3389 RDP"), (445, 3389))
    assert x["10.20.30.11"].Services == ("1433 SQL Server",)


def test_dynamic_rpc_counts_only_beside_the_endpoint_mapper(tmp_path):
    events = [event("ws01", "10.0.0.1", port=135), event("ws01", "10.0.0.1", port=49726, minutes=1),
              event("ws01", "10.0.0.2", port=49800, minutes=2)]
    x = contexts(triage(tmp_path, events))
    assert (x["10.0.0.1"].AdminPorts, x["10.0.0.1"].Services) == ((135, 49726), ("135 RPC", "49726 dynamic RPC"))
    assert (x["10.0.0.2"].AdminPorts, x["10.0.0.2"].Services) == ((), ("49800",))


def test_configured_admin_ports_are_emphasised(tmp_path):
    x = contexts(triage(tmp_path, [event("ws01", "10.0.0.1", port=5900)],
                        settings=Settings(ports=Settings.from_env({"TRIAGE_ADMIN_PORTS": "5900=VNC"}).ports)))
    assert (x["10.0.0.1"].AdminPorts, x["10.0.0.1"].Services) == ((5900,), ("5900 VNC",))


def test_admin_rows_come_first_in_the_comment_but_not_in_the_json():
    outcome = edge_outcome(Settings(excluded_processes=(), excluded_accounts=()))
    root = ET.fromstring(outcome.comment_html)
    table = root.findall(".//table")[0]
    flags = ["".join(tr.findall("td")[0].itertext()) for tr in table.findall("tr")[1:]]
    assert flags == sorted(flags, key=lambda f: "ADMIN" not in f) and "ADMIN" in flags[0]
    ips = [c.RemoteIP for c in rows(outcome)]
    assert ips == sorted(ips, key=lambda ip: -next(c.LastSeen for c in rows(outcome) if c.RemoteIP == ip).timestamp())


def test_new_destinations_against_the_baseline(tmp_path):
    # Seen 3 days before the incident: 10.0.0.1 (held then by srv1). In the window: .1 again, .2 (new),
    # and .3 now held by srv1 (a new address, but not a new device).
    day = 24 * 60
    events = [event("ws01", "10.0.0.1", minutes=-3 * day), event("ws01", "10.0.0.1", minutes=5),
              event("ws01", "10.0.0.2", minutes=6), event("ws01", "10.0.0.3", minutes=7)]
    infos = [info("srv1", ["10.0.0.1"], minutes=-3 * day - 60), info("srv1", ["10.0.0.1", "10.0.0.3"], minutes=0),
             info("srv2", ["10.0.0.2"], minutes=0)]
    x = contexts(triage(tmp_path / "a", events, infos))
    assert {ip: (c.NewAddress, c.NewDevice) for ip, c in x.items()} == {
        "10.0.0.1": (False, False), "10.0.0.2": (True, True), "10.0.0.3": (True, False)}
    off = contexts(triage(tmp_path / "b", events, infos, settings=Settings(baseline_days=0)))
    assert {c.NewAddress for c in off.values()} == {None}


def test_failed_attempts_are_kept_apart_per_address(tmp_path):
    events = [event("ws01", "10.0.0.9", port=445, action="ConnectionFailed"),
              event("ws01", "10.0.0.9", port=139, action="ConnectionFailed", minutes=1),
              event("ws01", "::ffff:10.0.0.9", port=445, action="ConnectionAttempt", minutes=2),
              event("ws01", "8.8.8.8", action="ConnectionFailed"),
              event("ws01", "10.0.0.8", action="ConnectionFailed", process="SenseNdr.exe"),
              event("ws01", "10.0.0.1")]
    outcome = triage(tmp_path, events)
    (device,) = outcome.result.hosts[0].devices
    assert [c.RemoteIP for c in device.connections] == ["10.0.0.1"]
    assert [(f.RemoteIP, f.Failed, f.Attempted, f.Ports) for f in device.failed] == [("10.0.0.9", 2, 1, (139, 445))]
    assert "Failed or attempted connections to internal addresses" in outcome.comment_html


def test_links_carry_the_exact_query_and_the_remote_device_page():
    outcome = edge_outcome()
    root = ET.fromstring(outcome.comment_html)
    hrefs = [a.get("href") for a in root.iter("a")]
    la = next(h for h in hrefs if "LogsBlade" in h)
    hunting = next(h for h in hrefs if "advanced-hunting" in h)
    query = outcome.result.hosts[0].query
    without_comments = "\n".join(line for line in query.splitlines() if not line.lstrip().startswith("//"))
    packed = re.search(r"/q/([^/]+)/timespan/", la).group(1)
    assert gzip.decompress(base64.b64decode(unquote(packed))).decode() == without_comments
    assert "resourceId/%2Fsubscriptions%2F11111111-2222-4333-8444-555555555555%2FresourceGroups%2Frg-sec%2F" in la
    assert la.endswith("/timespan/2026-03-07T13%3A00%3A00Z%2F2026-03-10T14%3A00%3A00Z")
    defender_kql = gzip.decompress(base64.b64decode(unquote(hunting.split("query=")[1].split("&")[0]))).decode()
    assert "TimeGenerated" not in defender_kql and "Timestamp between (WindowStart .. WindowEnd)" in defender_kql
    assert "https://security.microsoft.com/machines/v2/73716c303273716c303273716c303273716c3032/overview" in hrefs


def test_links_stay_when_rows_are_cut(tmp_path):
    # Cut rows are exactly when the analyst needs the query: the links keep their room.
    events = [event("ws01", f"10.1.{i // 250}.{i % 250 + 1}", port=445, minutes=i * 0.01, RemoteUrl="u" * 150)
              for i in range(400)]
    html = triage(tmp_path, events).comment_html
    assert len(html) <= 30_000 and re.search(r"\d+ of 400 shown", html)
    assert html.count(">Defender advanced hunting</a>") == 1 and html.count(">Log Analytics</a>") == 1


def test_links_give_way_when_many_hosts_leave_too_little_room_for_rows():
    outcome = edge_outcome()
    host = outcome.result.hosts[0]
    many = replace(outcome.result, hosts=tuple(replace(host, host_name=f"ws{i}") for i in range(7)))
    html = render(many)
    assert len(html) <= 30_000 and "advanced-hunting" not in html
    assert [f"ws{i}" for i in range(7)] == re.findall(r"<b>Host (ws\d)</b>", html)
    assert "advanced-hunting" in render(replace(outcome.result, hosts=(host,) * 2))


def test_json_carries_the_same_extra_fields(capsys):
    from triage.cli import main

    assert main(["run", "--incident", str(EDGE / "incident.json"), "--data", str(EDGE / "data"), "--format", "json"]) == 0
    device = json.loads(capsys.readouterr().out)["hosts"][0]["devices"][0]
    assert [c["RemoteIP"] for c in device["context"]] == [c["RemoteIP"] for c in device["connections"]]
    assert device["failedConnections"][0] == {"RemoteIP": "10.20.30.12", "Failed": 1, "Attempted": 0, "Ports": [445],
                                              "FirstSeen": "2026-03-09T12:00:00Z", "LastSeen": "2026-03-09T12:00:00Z"}


def test_follow_up_plan():
    outcome = edge_outcome()
    pairs = [(c, x) for h in outcome.result.hosts for d in h.devices for c, x in zip(d.connections, d.context)]
    assert followups.labels(pairs, Settings()) == [
        "lateral-movement:rdp", "lateral-movement:smb", "lateral-movement:sql", "lateral-movement:ssh",
        "lateral-movement:winrm"]
    assert followups.severity(pairs, Settings()) is None
    assert followups.severity(pairs, Settings(raise_severity_to="High")) == "High"
    no_admin = [(c, x) for c, x in pairs if not x.AdminPorts]
    assert followups.severity(no_admin, Settings(raise_severity_to="High")) is None
    assert followups.severity(pairs[:1], Settings(raise_severity_to="Medium", raise_severity_when="any")) == "Medium"
    title, text = followups.task_text(pairs)
    assert title == "Review internal connections from ws-fin-07.contoso.local"
    assert text.splitlines()[1] == "10.20.30.61 (no Defender device): 22 SSH"


def test_a_high_admin_port_is_not_taken_for_rpc():
    ports = Settings.from_env({"TRIAGE_ADMIN_PORTS": "50000"}).ports
    assert (ports.tag(50000, (50000,)), ports.tag(49726, (135, 49726))) == ("port-50000", "rpc")
