"""Labels, severity and the task (issue 6 follow-ups) against the spec-checking contract server."""

import uuid

import pytest

from contracts.sentinel_server import Fault
from triage.errors import TransientError, UpstreamError
from triage.sentinel import canonical_incident_path, comment_id, task_id

GET, PUT, TASK = "Incidents_Get", "Incidents_CreateOrUpdate", "IncidentTasks_CreateOrUpdate"
READ_TASK = "IncidentTasks_Get"


def set_properties(azure, incident_id, **values):
    azure.sentinel.edit_incident(incident_id, lambda properties: properties.update(values))


def labels(azure, incident_id):
    stored = azure.sentinel.incident(incident_id)["properties"]["labels"]
    return [(label["labelName"], label["labelType"]) for label in stored]


def puts(azure):
    return [r for r in azure.sentinel.server.requests if r.method == "PUT"]


def test_labels_are_added_to_the_existing_ones_once_each(azure, client, incident_id):
    set_properties(azure, incident_id, labels=[{"labelName": "Phishing", "labelType": "User"},
                                               {"labelName": "fusion", "labelType": "AutoAssigned"}],
                   owner={"objectId": "2046feea-040d-4a46-9e2b-91c2941bfa70", "assignedTo": "john doe", "email": None},
                   classificationComment="kept as it was")
    before = azure.sentinel.incident(incident_id)
    etag = before["etag"]

    client.update_incident(incident_id, ["lateral-movement:smb", "PHISHING", "lateral-movement:rpc",
                                         "Lateral-Movement:SMB"], None)

    assert labels(azure, incident_id) == [("Phishing", "User"), ("fusion", "AutoAssigned"),
                                          ("lateral-movement:smb", "User"), ("lateral-movement:rpc", "User")]
    after = azure.sentinel.incident(incident_id)["properties"]
    assert after["owner"] == {"objectId": "2046feea-040d-4a46-9e2b-91c2941bfa70", "assignedTo": "john doe"}
    assert (after["title"], after["severity"], after["status"], after["classificationComment"]) == (
        "Remote service created over DCERPC (PsExec-like)", "High", "New", "kept as it was")
    assert (after["firstActivityTimeUtc"], after["incidentNumber"]) == ("2020-09-20T16:16:58.7940000Z", 4217)
    assert azure.sentinel.calls == [GET, PUT]
    (put,) = puts(azure)
    assert put.headers["if-match"] == put.json()["etag"] == etag != azure.sentinel.incident(incident_id)["etag"]
    # labelType is readOnly in the spec: labels go back by name, the service keeps their types
    assert [label for label in put.json()["properties"]["labels"] if "labelType" in label] == []


def test_nothing_to_change_writes_nothing(azure, client, incident_id):
    client.update_incident(incident_id, ["lateral-movement:smb"], None)
    etag = azure.sentinel.incident(incident_id)["etag"]
    azure.sentinel.calls.clear()
    client.update_incident(incident_id, ["LATERAL-MOVEMENT:SMB"], "Low")
    client.update_incident(incident_id, [], None)
    assert azure.sentinel.calls == [GET, GET]
    assert azure.sentinel.incident(incident_id)["etag"] == etag
    assert labels(azure, incident_id) == [("lateral-movement:smb", "User")]


@pytest.mark.parametrize("current, asked, expected", [
    ("Medium", "High", "High"),
    ("Informational", "Low", "Low"),
    ("High", "Low", "High"),
    ("High", "Medium", "High"),
    ("Medium", "Medium", "Medium"),
    ("Low", None, "Low"),
])
def test_severity_is_raised_and_never_lowered(azure, client, incident_id, current, asked, expected):
    set_properties(azure, incident_id, severity=current)
    client.update_incident(incident_id, [], asked)
    assert azure.sentinel.incident(incident_id)["properties"]["severity"] == expected
    assert azure.sentinel.calls == ([GET, PUT] if expected != current else [GET])


def test_a_concurrent_edit_is_kept_by_reading_again(azure, client, incident_id):
    set_properties(azure, incident_id, severity="Medium")

    def analyst_edits():
        set_properties(azure, incident_id, labels=[{"labelName": "analyst:reviewed", "labelType": "User"}],
                       owner={"assignedTo": "jane analyst"}, status="Active")

    azure.sentinel.before_next(PUT, analyst_edits)  # lands between our read and our write: 412
    client.update_incident(incident_id, ["lateral-movement:winrm"], "High")

    assert azure.sentinel.calls == [GET, PUT, GET, PUT]
    first, second = puts(azure)
    assert first.headers["if-match"] != second.headers["if-match"]
    assert labels(azure, incident_id) == [("analyst:reviewed", "User"), ("lateral-movement:winrm", "User")]
    after = azure.sentinel.incident(incident_id)["properties"]
    assert (after["owner"], after["status"], after["severity"]) == ({"assignedTo": "jane analyst"}, "Active", "High")


def test_a_stale_body_etag_conflict_also_reads_again(azure, client, incident_id):
    azure.sentinel.fail(Fault(PUT, 409, code="Conflict"))
    client.update_incident(incident_id, ["lateral-movement:rpc"], None)
    assert azure.sentinel.calls == [GET, PUT, GET, PUT]
    assert labels(azure, incident_id) == [("lateral-movement:rpc", "User")]


def test_an_incident_that_keeps_changing_is_transient_after_three_rereads(azure, client, incident_id):
    for n in range(4):
        azure.sentinel.before_next(PUT, lambda n=n: set_properties(azure, incident_id, description=f"edit {n}"))
    with pytest.raises(TransientError, match="kept changing"):
        client.update_incident(incident_id, ["lateral-movement:smb"], None)
    assert azure.sentinel.calls == [GET, PUT] * 4
    assert labels(azure, incident_id) == []
    assert azure.sentinel.incident(incident_id)["properties"]["description"] == "edit 3"


def test_the_task_is_written_once_across_runs(azure, client, incident_id):
    first = client.write_task(incident_id, "Review lateral movement", "<p>2 devices reached</p>")
    created = azure.sentinel.tasks_on(incident_id)[first]["properties"]["createdTimeUtc"]
    second = client.write_task(incident_id.replace("/Incidents/", "/incidents/"), "Review lateral movement",
                               "<p>3 devices reached</p>")
    assert first == second == task_id(incident_id) == task_id(incident_id.upper())
    assert uuid.UUID(first).version == 5 and first != comment_id(incident_id)
    tasks = azure.sentinel.tasks_on(incident_id)
    assert list(tasks) == [first]
    properties = tasks[first]["properties"]
    assert (properties["title"], properties["description"], properties["status"]) == (
        "Review lateral movement", "<p>3 devices reached</p>", "New")
    assert properties["createdTimeUtc"] == created
    assert azure.sentinel.calls == [READ_TASK, TASK, READ_TASK, TASK]


def test_a_completed_task_stays_completed_when_triage_runs_again(azure, client, incident_id):
    name = client.write_task(incident_id, "Review lateral movement", "<p>2 devices reached</p>")
    azure.sentinel.tasks_on(incident_id)[name]["properties"]["status"] = "Completed"  # the analyst closes it
    client.write_task(incident_id, "Review lateral movement", "<p>3 devices reached</p>")
    properties = azure.sentinel.tasks_on(incident_id)[name]["properties"]
    assert (properties["description"], properties["status"]) == ("<p>3 devices reached</p>", "Completed")


@pytest.mark.parametrize("operation", [PUT, READ_TASK, TASK])
def test_refusals_are_not_retried_and_carry_the_api_code(azure, client, incident_id, operation):
    azure.sentinel.fail(Fault(operation, 403, {"Retry-After": "1"}, "AuthorizationFailed"))
    with pytest.raises(UpstreamError, match="Microsoft Sentinel Responder") as caught:
        if operation == PUT:
            client.update_incident(incident_id, ["lateral-movement:smb"], None)
        else:
            client.write_task(incident_id, "Review lateral movement", "")
    assert (caught.value.code, caught.value.status) == ("AuthorizationFailed", 403)
    assert azure.sentinel.calls == {PUT: [GET, PUT], READ_TASK: [READ_TASK], TASK: [READ_TASK, TASK]}[operation]


def test_busy_answers_to_the_update_are_retried_with_the_same_etag(azure, client, incident_id):
    azure.sentinel.fail(Fault(PUT, 429, {"Retry-After": "0"}, "TooManyRequests"))
    client.update_incident(incident_id, ["lateral-movement:smb"], None)
    assert azure.sentinel.calls == [GET, PUT, PUT]
    assert labels(azure, incident_id) == [("lateral-movement:smb", "User")]


def test_the_server_rejects_read_only_properties_as_the_spec_says(azure, client, incident_id):
    """The contract server's own check, so a client sending labelType or incidentNumber cannot pass."""
    incident = azure.sentinel.incident(incident_id)
    body = {"etag": incident["etag"], "properties": {"title": "t", "severity": "High", "status": "New",
                                                       "incidentNumber": 1,
                                                       "labels": [{"labelName": "x", "labelType": "User"}]}}
    with pytest.raises(UpstreamError, match="InvalidRequestContent"):
        client._call("PUT", canonical_incident_path(incident_id), "update the incident", body)
    assert azure.sentinel.violations == ["read-only properties sent: ['properties.incidentNumber', "
                                         "'properties.labels[0].labelType']"]
    azure.sentinel.violations.clear()
