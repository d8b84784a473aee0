"""The acceptance cases (examples/*): the CLI's JSON equals expected.json field for field."""

import json

import pytest

from conftest import load_json
from triage.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def comparable(doc: dict) -> dict:
    """The parts expected.json defines: the window and, per host, match, status and rows."""
    return {
        "window": doc["window"],
        "hosts": [
            {k: h[k] for k in ("hostName", "matchedBy", "status")}
            | {"devices": [{"deviceName": d["deviceName"], "connections": d["connections"]} for d in h["devices"]]}
            for h in doc["hosts"]
        ],
    }


def test_case_matches_expected(case, capsys):
    code, out, err = run_cli(capsys, "run", "--incident", str(case / "incident.json"), "--data", str(case / "data"),
                             "--format", "json", "--now", "2026-12-01T00:00:00Z")
    assert code == 0, err
    assert comparable(json.loads(out)) == comparable(load_json(case / "expected.json"))


def test_case_json_carries_incident_and_status(case, capsys):
    code, out, _ = run_cli(capsys, "run", "--incident", str(case / "incident.json"), "--data", str(case / "data"),
                           "--format", "json", "--now", "2026-12-01T00:00:00Z")
    doc = json.loads(out)
    incident = load_json(case / "incident.json")["object"]
    assert doc["incident"]["id"] == incident["id"]
    assert doc["incident"]["number"] == incident["properties"]["incidentNumber"]
    assert doc["status"] == "done" and doc["engine"] == "embedded"


@pytest.mark.parametrize("fmt", ["table", "html"])
def test_case_other_formats_show_every_remote_address(case, capsys, fmt):
    code, out, _ = run_cli(capsys, "run", "--incident", str(case / "incident.json"), "--data", str(case / "data"),
                           "--format", fmt, "--now", "2026-12-01T00:00:00Z")
    assert code == 0
    expected = load_json(case / "expected.json")
    for host in expected["hosts"]:
        for device in host["devices"]:
            for row in device["connections"]:
                assert row["RemoteIP"] in out
