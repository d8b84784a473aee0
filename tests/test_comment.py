"""The incident comment (SPEC section 6): escaped, well-formed, bounded, plain about failures."""

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from triage.comment import LIMIT, render
from triage.incident import Incident
from triage.result import Connection, Context, DeviceResult, HostResult, TriageResult
from triage.services import PortCatalog
from triage.window import Window

T = datetime(2026, 3, 9, tzinfo=timezone.utc)
WINDOW = Window(T - timedelta(hours=48), T + timedelta(hours=24))
INCIDENT = Incident(arm_id="/subscriptions/s/.../incidents/1", number=7, title="t")


def connection(i: int, **over) -> Connection:
    values = dict(RemoteIP=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", RemoteDeviceName=f"srv{i}.corp.local",
                  RemoteDeviceCandidates=(f"srv{i}.corp.local",), ConnectedPorts=(445, 3389), ConnectionCount=i + 1,
                  FirstSeen=T, LastSeen=T + timedelta(seconds=i), RemoteUrl=None, InitiatingProcessFileName="powershell.exe",
                  InitiatingProcessAccountSid="S-1-5-18", InitiatingProcessAccountUpn=None, CompromisedDevice="ws01")
    values.update(over)
    return Connection(**values)


def device(name: str, conns, failed=(), new=None, ids=False) -> DeviceResult:
    ports = PortCatalog()
    context = tuple(Context(c.RemoteIP, tuple(ports.label(p, c.ConnectedPorts) for p in c.ConnectedPorts),
                            tuple(ports.admin(c.ConnectedPorts)), new, new if c.RemoteDeviceName else None,
                            f"id{i}" if ids else None) for i, c in enumerate(conns))
    return DeviceResult(name, tuple(conns), context, tuple(failed))


def result(*hosts: HostResult) -> TriageResult:
    return TriageResult(INCIDENT, WINDOW, hosts, engine="embedded")


def found(conns, name="ws01") -> HostResult:
    return HostResult(name, "hostname", name, "found", (device(name, conns),))


def well_formed(html: str) -> ET.Element:
    return ET.fromstring(html)  # raises on any unbalanced or unescaped markup


def test_small_result_is_complete():
    html = render(result(found([connection(i) for i in range(3)])))
    well_formed(html)
    assert html.count("<tr>") == 4  # header + 3 rows
    assert html.count("<b>ADMIN</b>") == 3 and "445 SMB, 3389 RDP" in html
    assert "shown" not in html
    assert "Window searched: 2026-03-07T00:00:00Z to 2026-03-10T00:00:00Z" in html
    assert "matched by host name <code>ws01</code>" in html


def test_5000_connections_are_cut_at_row_boundaries_with_a_count():
    html = render(result(found([connection(i) for i in range(5000)])))
    root = well_formed(html)
    assert len(html) <= LIMIT
    shown = len(root.findall(".//tr")) - 1
    assert 50 < shown < 5000
    assert f"{shown} of 5000 shown" in html
    # Cut at row boundaries: every row shown is whole, in order.
    last_seen = [tr.findall("td")[1].text for tr in root.findall(".//tr")[1:]]
    assert last_seen[0] == "2026-03-09T00:00:00Z" and len(last_seen) == shown


def test_hostile_values_are_escaped_and_long_ones_shortened():
    evil = connection(1, RemoteUrl="http://x/" + "A" * 20000 + "<script>alert(1)</script>",
                      InitiatingProcessFileName='"><img src=x onerror=alert(1)>', RemoteDeviceName="<b>srv</b>&'\"")
    html = render(result(found([evil] * 40, name="<script>ws</script>")))
    root = well_formed(html)
    assert len(html) <= LIMIT
    assert "<script>" not in html and "<img" not in html and "<b>srv" not in html
    assert "&lt;b&gt;srv&lt;/b&gt;&amp;" in html
    texts = "".join(root.itertext())
    assert "<script>ws</script>" in texts  # shown to the analyst as text
    assert max(len(td.text or "") for td in root.iter("td")) <= 200


def test_every_host_is_listed_before_rows_are_shared_out():
    hosts = [found([connection(i) for i in range(200)], name=f"ws{n:03d}") for n in range(60)]
    html = render(result(*hosts))
    well_formed(html)
    assert len(html) <= LIMIT
    listed = re.findall(r"<b>Host (ws\d+)</b>", html)
    more = re.search(r"(\d+) more host\(s\) not shown", html)
    assert listed[:2] == ["ws000", "ws001"]
    assert len(listed) == 60 and more is None
    # Round-robin: each device keeps its most recent rows, none is starved by the first.
    counts = [int(n) for n in re.findall(r"<p>(\d+) of 200 shown", html)]
    assert len(counts) == 60 and counts == sorted(counts, reverse=True) and counts[0] - counts[-1] <= 1


def test_hundreds_of_hosts_still_fit():
    hosts = [HostResult(f"host-{n:04d}-" + "x" * 150, "hostname", "h", "device_not_found") for n in range(400)]
    html = render(result(*hosts))
    well_formed(html)
    assert len(html) <= LIMIT
    more = int(re.search(r"(\d+) more host\(s\) not shown", html).group(1))
    assert more + html.count("<b>Host host-") == 400 and more > 0


@pytest.mark.parametrize("host, words", [
    (HostResult("ws01", "fqdn", "ws01.corp", "failed", message="Log Analytics said BadArgumentError"),
     "the query failed</b>: Log Analytics said BadArgumentError. Its connections are unknown, not absent."),
    (HostResult("ws01", "deviceId", "abc", "device_not_found"), "no Defender device matched it in the window"),
    (HostResult("ws01", None, None, "unidentified", message="the Host entity has no device id"), "not searched"),
])
def test_failures_are_said_plainly_never_as_no_connections(host, words):
    html = render(result(host))
    assert words in html
    assert "no successful connections" not in html


def test_partial_results_are_flagged():
    host = HostResult("ws01", "hostname", "ws01", "found", (device("ws01", [connection(1)]),),
                      message="query exceeded the row limit", partial=True)
    html = render(result(host))
    assert "<b>Partial results</b>: query exceeded the row limit. Connections below may be incomplete." in html


def test_ambiguous_hosts_list_each_device():
    host = HostResult("ws01", "hostname", "ws01", "ambiguous",
                      (device("ws01.a.local", [connection(1)]), device("ws01.b.local", [])))
    html = render(result(host))
    assert "<b>ambiguous</b>: 2 devices carry this name (ws01.a.local, ws01.b.local)" in html
    assert "Device <b>ws01.b.local</b>: no successful connections" in html


def test_skipped_run_says_why():
    html = render(TriageResult(INCIDENT, WINDOW, (), engine="none", skipped_reason="the incident has no Host entity"))
    assert "Skipped: the incident has no Host entity." in html
