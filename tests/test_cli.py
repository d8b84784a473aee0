"""The command line: exit codes 0 / 2 / 1, messages that name the problem, never a traceback."""

import json
import subprocess
import sys

import pytest

from conftest import EXAMPLES, ROOT, load_json

CASE = EXAMPLES / "otrf-psexec"


def triage(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_json_run_through_the_real_entry_point():
    proc = triage("run", "--incident", str(CASE / "incident.json"), "--data", str(CASE / "data"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [c["RemoteIP"] for h in doc["hosts"] for d in h["devices"] for c in d["connections"]] == ["172.18.38.5", "172.18.39.6"]


def test_table_is_the_default_and_says_it_is_a_dry_run():
    proc = triage("run", "--incident", str(CASE / "incident.json"), "--data", str(CASE / "data"))
    assert proc.returncode == 0
    assert "workstation6.theshire.local" in proc.stdout and "135 RPC, 49726 dynamic RPC" in proc.stdout
    assert "dry run" in proc.stderr


@pytest.mark.parametrize("content, words", [
    ("", "the request body is empty"),
    ("{}", "empty object"),
    ('{"incidentArmId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.OperationalInsights/workspaces/w/'
     'providers/Microsoft.SecurityInsights/incidents/1"}', "needs the Azure path"),
])
def test_bad_incidents_exit_2_with_the_reason(tmp_path, content, words):
    path = tmp_path / "incident.json"
    path.write_text(content)
    proc = triage("run", "--incident", str(path), "--data", str(CASE / "data"))
    assert proc.returncode == 2
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_an_implausible_host_is_not_searched_and_the_others_are(tmp_path):
    incident = load_json(CASE / "incident.json")
    incident["object"]["properties"]["relatedEntities"].insert(0, {"kind": "Host", "properties": {"hostName": 'ws01"|take 1//'}})
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(incident))
    proc = triage("run", "--incident", str(path), "--data", str(CASE / "data"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    hosts = json.loads(proc.stdout)["hosts"]
    assert [(h["hostName"], h["status"]) for h in hosts] == [('ws01"|take 1//', "unidentified"), ("WORKSTATION5", "found")]
    assert "not a plausible host name" in hosts[0]["message"] and hosts[1]["devices"]


def test_missing_files_exit_2(tmp_path):
    proc = triage("run", "--incident", str(tmp_path / "nope.json"), "--data", str(CASE / "data"))
    assert (proc.returncode, "cannot read the incident file" in proc.stderr) == (2, True)
    proc = triage("run", "--incident", str(CASE / "incident.json"), "--data", str(tmp_path / "nodata"))
    assert (proc.returncode, "no such data folder" in proc.stderr) == (2, True)


def test_bad_setting_exits_2(monkeypatch):
    proc = subprocess.run([sys.executable, "-m", "triage", "run", "--incident", str(CASE / "incident.json"), "--data", str(CASE / "data")],
                          capture_output=True, text=True, cwd=ROOT, env={"TRIAGE_LOOKBACK_HOURS": "two days", "PATH": ""})
    assert proc.returncode == 2 and "TRIAGE_LOOKBACK_HOURS must be a number of hours" in proc.stderr


def test_window_options_narrow_the_search():
    # The DC connection (16:16:58.804) falls outside a window ending at 16:16:58.800.
    proc = triage("run", "--incident", str(CASE / "incident.json"), "--data", str(CASE / "data"), "--format", "json",
                  "--start", "2020-09-20T16:00:00Z", "--end", "2020-09-20T16:16:58.800Z")
    doc = json.loads(proc.stdout)
    assert doc["window"] == {"start": "2020-09-20T16:00:00Z", "end": "2020-09-20T16:16:58.800000Z"}
    assert [c["RemoteIP"] for h in doc["hosts"] for d in h["devices"] for c in d["connections"]] == ["172.18.39.6"]


def test_titles_with_brackets_are_printed_as_they_are(tmp_path):
    body = json.loads((CASE / "incident.json").read_text())
    body["object"]["properties"]["title"] = "[/bold] PsExec [red]to[/red] WORKSTATION6"
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(body))
    proc = triage("run", "--incident", str(path), "--data", str(CASE / "data"))
    assert proc.returncode == 0, proc.stderr
    assert "[/bold] PsExec [red]to[/red] WORKSTATION6" in proc.stdout


@pytest.mark.parametrize("option, value", [("--now", ""), ("--lookback-hours", "nan"), ("--lookback-hours", "-5"),
                                           ("--followup-hours", "inf"), ("--start", "yesterday")])
def test_bad_options_exit_2_without_a_traceback(option, value):
    proc = triage("run", "--incident", str(CASE / "incident.json"), "--data", str(CASE / "data"), f"{option}={value}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and option in proc.stderr


@pytest.mark.parametrize("content, words", [
    ("[" * 100000 + "]" * 100000, "nests too deeply"),
    (json.dumps({"object": {"id": None, "properties": {"firstActivityTimeUtc": "0001-01-01T00:00:00Z",
                                                       "relatedEntities": [{"kind": "Host", "properties": {"hostName": "ws1"}}]}}}),
     "out of range"),
])
def test_extreme_incidents_exit_2(tmp_path, content, words):
    path = tmp_path / "incident.json"
    path.write_text(content)
    proc = triage("run", "--incident", str(path), "--data", str(CASE / "data"))
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name, value, words", [
    ("ARM_ENDPOINT", "ftp://x", "ARM_ENDPOINT must be an https:// URL"),
    ("LOG_ANALYTICS_ENDPOINT", "notaurl", "LOG_ANALYTICS_ENDPOINT must be an https:// URL"),
    ("AZURE_CLIENT_ID", "notaguid", "AZURE_CLIENT_ID must be the managed identity's client id"),
    ("TRIAGE_ADD_LABELS", "yes", "TRIAGE_ADD_LABELS must be true or false"),
])
def test_malformed_azure_settings_are_configuration_errors(name, value, words):
    proc = subprocess.run([sys.executable, "-m", "triage", "run", "--incident", str(CASE / "incident.json"), "--dry-run"],
                          capture_output=True, text=True, cwd=ROOT, env={name: value, "PATH": ""})
    assert proc.returncode == 2 and words in proc.stderr


def test_without_data_a_failed_sign_in_says_how_to_run_offline(monkeypatch):
    # No Azure here and no credential of any kind: DefaultAzureCredential finds nothing.
    for name in ("AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
                 "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    proc = triage("run", "--incident", str(CASE / "incident.json"))
    assert proc.returncode == 1
    assert "could not get a token" in proc.stderr and "pass --data DIR" in proc.stderr
    # One line for the failure, one for the way out: not azure-identity's list of every credential tried.
    assert "Attempted credentials" not in proc.stderr and len(proc.stderr.splitlines()) == 2


def test_an_unreachable_identity_endpoint_is_named_as_such(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    for name in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{closed}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "x")
    proc = triage("run", "--incident", str(CASE / "incident.json"))
    assert proc.returncode == 1
    assert "could not reach the identity endpoint for the managed identity" in proc.stderr
    assert "Log Analytics" not in proc.stderr and "Traceback" not in proc.stderr
