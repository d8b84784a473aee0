"""The Function App end to end, on this machine: the registered functions are called
in-process with real azure.functions objects; Log Analytics, Sentinel and the managed
identity are contract servers over HTTPS; the queue is Azurite."""

import json
import logging
import subprocess
import sys

import azure.functions as func
import pytest
from azure.storage.queue import QueueServiceClient

import function_app
from conftest import EXAMPLES, ROOT, load_json
from contracts import loganalytics_server as la
from contracts.comments import comment_rows, expected_rows, remote_device
from contracts.functions_host import HOST, Out, bindings, deliver_all, encode, functions
from contracts.sentinel_server import Fault
from triage.sentinel import comment_id

FUNCTIONS = functions(function_app.app)
HTTP = FUNCTIONS["triage_http"].get_user_function()
QUEUE_FUNCTION = FUNCTIONS["triage_queue"].get_user_function()


def post(body, headers=None) -> tuple[func.HttpResponse, Out]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    out = Out()
    request = func.HttpRequest("POST", "https://func.example/api/triage", headers=headers or {}, body=data,
                               params={"code": "function-key"})
    return HTTP(request, out), out


def only_comment(azure, incident_id: str) -> dict:
    comments = azure.sentinel.comments_on(incident_id)
    assert list(comments) == [comment_id(incident_id)]
    return next(iter(comments.values()))


def assert_rows_match(html: str, case) -> None:
    rows = [(a, b, remote_device(c), d, e, f) for a, b, c, d, e, f in comment_rows(html)]
    assert rows == expected_rows(load_json(case / "expected.json"))


@pytest.fixture
def queues(azurite, azure, monkeypatch):
    """triage-requests and its poison queue on Azurite, empty."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    name = bindings(FUNCTIONS["triage_queue"])["msg"]["queueName"]
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    clients = []
    for queue_name in (name, f"{name}-poison"):
        client = service.get_queue_client(queue_name)
        if not any(q.name == queue_name for q in service.list_queues(name_starts_with=queue_name)):
            client.create_queue()
        client.clear_messages()
        clients.append(client)
    return tuple(clients)


# --- what the host indexes ---------------------------------------------------------

def test_functions_are_declared_as_the_host_expects():
    http, queue = bindings(FUNCTIONS["triage_http"]), bindings(FUNCTIONS["triage_queue"])
    assert http["req"]["type"] == "httpTrigger" and http["req"]["route"] == "triage"
    assert http["req"]["methods"] == ["POST"] and http["req"]["authLevel"] == "FUNCTION"
    assert http["queued"] == {"direction": "OUT", "type": "queue", "name": "queued",
                              "queueName": "triage-requests", "connection": "AzureWebJobsStorage"}
    assert queue["msg"]["type"] == "queueTrigger" and queue["msg"]["queueName"] == "triage-requests"
    assert queue["msg"]["connection"] == "AzureWebJobsStorage"


def test_host_json_limits_fit_the_plans_and_the_budget():
    h, m, s = map(int, HOST["functionTimeout"].split(":"))
    timeout = h * 3600 + m * 60 + s
    assert timeout <= 600  # the Consumption plan's maximum; Flex accepts it too
    from triage.config import SETTINGS
    budget = float(SETTINGS["TRIAGE_QUERY_BUDGET_SECONDS"][0])
    # Queries, then up to three Sentinel calls of at most 20 s of retrying each, fit the
    # 230 s HTTP front-end limit and the function timeout.
    assert budget + 3 * 20 < 230 < timeout
    assert HOST["extensions"]["queues"]["messageEncoding"] == "base64"


def test_importing_the_function_app_is_fast_and_offline():
    code = ("import socket, time\n"
            "def refuse(*a, **k): raise AssertionError('network touched at import')\n"
            "socket.socket.connect = refuse\nsocket.create_connection = refuse\nsocket.getaddrinfo = refuse\n"
            "t = time.perf_counter()\nimport function_app\nprint(time.perf_counter() - t)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.0


# --- HTTP ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["otrf-psexec", "otrf-psremoting", "edge-a"])
def test_http_writes_one_comment_with_the_expected_rows(azure, name):
    case = EXAMPLES / name
    body = azure.add_case(case)
    response, out = post(body)
    assert response.status_code == 200, response.get_body()
    summary = json.loads(response.get_body())
    expected = load_json(case / "expected.json")
    assert summary["status"] == "done" and summary["engine"] == "log-analytics"
    assert summary["rows"] == len(expected_rows(expected))
    assert summary["commentId"] == comment_id(body["object"]["id"])
    assert [h["status"] for h in summary["hosts"]] == [h["status"] for h in expected["hosts"]]
    assert out.value is None  # nothing queued
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)

    again, _ = post(body)  # a re-run updates the same comment
    assert again.status_code == 200
    assert json.loads(again.get_body())["commentId"] == summary["commentId"]
    only_comment(azure, body["object"]["id"])
    assert azure.sentinel.calls.count("IncidentComments_CreateOrUpdate") == 2


def test_http_minimal_request_reads_incident_and_entities(azure, monkeypatch):
    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    response, _ = post({"incidentArmId": body["object"]["id"]})
    assert response.status_code == 500  # the workspace comes from the settings, which name none
    assert "LOG_ANALYTICS_WORKSPACE_ID is not set" in json.loads(response.get_body())["message"]
    assert azure.sentinel.comments_on(body["object"]["id"]) == {}

    azure.sentinel.calls.clear()
    monkeypatch.setenv("LOG_ANALYTICS_WORKSPACE_ID", body["workspaceId"].upper())
    response, _ = post({"incidentArmId": body["object"]["id"]})
    assert response.status_code == 200, response.get_body()
    assert azure.sentinel.calls == ["Incidents_Get", "Incidents_ListEntities", "IncidentComments_CreateOrUpdate"]
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)


def test_http_without_host_entity_reads_the_entities(azure):
    case = EXAMPLES / "otrf-psremoting"
    body = azure.add_case(case)
    trimmed = json.loads(json.dumps(body))
    trimmed["object"]["properties"]["relatedEntities"] = []
    response, _ = post(trimmed)
    assert response.status_code == 200
    assert azure.sentinel.calls == ["Incidents_ListEntities", "IncidentComments_CreateOrUpdate"]
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)


@pytest.mark.parametrize("body, words", [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (json.dumps({"hello": 1}).encode(), "not a Sentinel incident"),
    (json.dumps({"incidentArmId": "/subscriptions/x/incidents/1"}).encode(), "incidentArmId must be an incident resource id"),
])
def test_http_malformed_request_is_400_naming_the_problem(azure, body, words):
    response, out = post(body)
    assert response.status_code == 400
    assert words in json.loads(response.get_body())["message"]
    assert out.value is None and azure.sentinel.calls == [] and azure.logs.queries == []


def test_http_workspace_id_that_is_not_a_guid_is_400(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    body["workspaceId"] = "law-secops"
    response, _ = post(body)
    assert response.status_code == 400
    assert "must be the workspace id (a GUID" in json.loads(response.get_body())["message"]
    assert azure.logs.queries == []


def test_http_transient_upstream_failure_is_503_and_writes_nothing(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.fail(la.throttled("3600"))
    response, _ = post(body)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == function_app.RETRY_AFTER
    assert "HTTP 429" in json.loads(response.get_body())["message"]
    assert azure.sentinel.comments_on(body["object"]["id"]) == {}


def test_http_missing_defender_tables_end_as_failed_and_the_comment_says_so(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.load(body["workspaceId"], None)
    response, _ = post(body)
    assert response.status_code == 200
    summary = json.loads(response.get_body())
    assert summary["status"] == "failed" and summary["rows"] == 0
    assert "Defender tables" in summary["hosts"][0]["message"]
    assert len(azure.logs.queries) == 1  # not retried
    html = only_comment(azure, body["object"]["id"])["properties"]["message"]
    assert "the query failed" in html and "not in this workspace" in html and "no successful connections" not in html


def test_http_credential_failure_is_reported_as_authentication(azure, monkeypatch):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-4000-8000-000000000000")  # not this app's identity
    response, _ = post(body)
    assert response.status_code == 500
    doc = json.loads(response.get_body())
    assert doc["error"] == "authentication" and "managed identity 00000000-0000-4000-8000-000000000000" in doc["message"]
    assert azure.logs.queries == [] and azure.sentinel.comments_on(body["object"]["id"]) == {}


def test_http_sentinel_refusal_is_502_with_the_api_error_code(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.sentinel.fail(Fault("IncidentComments_CreateOrUpdate", 403, code="AuthorizationFailed"))
    response, _ = post(body)
    assert response.status_code == 502
    doc = json.loads(response.get_body())
    assert doc["code"] == "AuthorizationFailed" and "Microsoft Sentinel Responder" in doc["message"]
    assert azure.sentinel.calls == ["IncidentComments_CreateOrUpdate"]


# --- queue -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["otrf-psexec", "edge-a"])
def test_queue_message_writes_one_comment_even_when_delivered_twice(azure, queues, name):
    queue, poison = queues
    case = EXAMPLES / name
    body = azure.add_case(case)
    text = (case / "incident.json").read_text()
    queue.send_message(encode(text))
    queue.send_message(encode(text))  # a duplicate delivery
    assert deliver_all(queue, poison, QUEUE_FUNCTION) == ["completed", "completed"]
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)
    assert list(poison.peek_messages()) == []


def test_http_async_request_is_queued_then_triaged_from_the_queue(azure, queues):
    queue, poison = queues
    case = EXAMPLES / "otrf-psremoting"
    body = azure.add_case(case)
    response, out = post(body, headers={"Prefer": "respond-async"})
    assert response.status_code == 202
    assert json.loads(response.get_body()) == {"status": "queued", "queue": "triage-requests",
                                                "incident": body["object"]["id"]}
    assert azure.logs.queries == [] and azure.sentinel.calls == []
    queue.send_message(encode(out.value))  # what the host does with the output binding
    assert deliver_all(queue, poison, QUEUE_FUNCTION) == ["completed"]
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)


def test_http_async_request_that_cannot_succeed_is_refused_not_queued(azure):
    response, out = post({"object": {"id": "x"}}, headers={"Prefer": "respond-async"})
    assert response.status_code == 400 and out.value is None


def test_queue_message_that_can_never_succeed_is_logged_and_completed(azure, queues, caplog):
    queue, poison = queues
    queue.send_message(encode('{"incidentArmId": "not an id"}'))
    with caplog.at_level(logging.ERROR, logger="triage"):
        assert deliver_all(queue, poison, QUEUE_FUNCTION) == ["completed"]
    assert "can never succeed" in caplog.text and "incidentArmId must be" in caplog.text
    assert list(poison.peek_messages()) == []


def test_queue_transient_failure_is_retried_by_the_runtime(azure, queues):
    queue, poison = queues
    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    azure.logs.fail(la.throttled("3600"))  # the first delivery's first query
    queue.send_message(encode(json.dumps(body)))
    assert deliver_all(queue, poison, QUEUE_FUNCTION) == ["retried", "completed"]
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)


def test_queue_message_failing_every_time_ends_in_the_poison_queue(azure, queues):
    queue, poison = queues
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.sentinel.fail(*[Fault("IncidentComments_CreateOrUpdate", 429, {"Retry-After": "3600"}, "TooManyRequests")] * 5)
    queue.send_message(encode(json.dumps(body)))
    outcomes = deliver_all(queue, poison, QUEUE_FUNCTION)
    assert outcomes == ["retried"] * (HOST["extensions"]["queues"]["maxDequeueCount"] - 1) + ["poisoned"]
    assert len(list(poison.peek_messages())) == 1
    assert azure.sentinel.comments_on(body["object"]["id"]) == {}


# --- CLI, Azure path ---------------------------------------------------------------------

def test_cli_without_data_uses_azure_and_dry_run_writes_nothing(azure, capsys):
    from triage.cli import main

    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    assert main(["run", "--incident", str(case / "incident.json"), "--format", "html", "--dry-run"]) == 0
    assert_rows_match(capsys.readouterr().out, case)
    assert azure.sentinel.comments_on(body["object"]["id"]) == {} and len(azure.logs.queries) == 4

    assert main(["run", "--incident", str(case / "incident.json"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["commentId"] == comment_id(body["object"]["id"])
    assert_rows_match(only_comment(azure, body["object"]["id"])["properties"]["message"], case)


def test_tokens_are_never_logged(azure, caplog):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    with caplog.at_level(logging.DEBUG):
        response, _ = post(body)
    assert response.status_code == 200
    assert azure.identity.issued
    for token in azure.identity.issued:
        assert token not in caplog.text
    assert azure.identity.header_secret not in caplog.text


def test_http_partial_results_are_written_and_flagged(azure):
    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    azure.logs.fail(la.partial("The results of this query exceed the set limit of 64000000 bytes"))
    response, _ = post(body)
    assert response.status_code == 200
    assert json.loads(response.get_body())["status"] == "partial"
    html = only_comment(azure, body["object"]["id"])["properties"]["message"]
    assert "Partial results" in html and "exceed the set limit" in html
    assert_rows_match(html, case)


# --- follow-ups (issue 6), end to end ----------------------------------------------------

def test_follow_ups_are_off_by_default(azure):
    body = azure.add_case(EXAMPLES / "otrf-psremoting")
    response, _ = post(body)
    assert response.status_code == 200
    incident = azure.sentinel.incident(body["object"]["id"])
    assert incident["properties"]["labels"] == [] and azure.sentinel.tasks_on(body["object"]["id"]) == {}


def test_follow_ups_label_raise_and_ask_when_enabled(azure, monkeypatch):
    # psremoting: SMB 445 to the DC and WinRM 5985 to workstation6, both admin protocols.
    monkeypatch.setenv("TRIAGE_ADD_LABELS", "true")
    monkeypatch.setenv("TRIAGE_RAISE_SEVERITY_TO", "High")
    monkeypatch.setenv("TRIAGE_CREATE_TASK", "true")
    body = azure.add_case(EXAMPLES / "otrf-psremoting")
    azure.sentinel.edit_incident(body["object"]["id"], lambda p: p.update(severity="Medium"))
    for _ in range(2):  # a re-run changes nothing more
        response, _ = post(body)
        assert response.status_code == 200
    properties = azure.sentinel.incident(body["object"]["id"])["properties"]
    assert [label["labelName"] for label in properties["labels"]] == ["lateral-movement:smb", "lateral-movement:winrm"]
    assert properties["severity"] == "High"
    (task,) = azure.sentinel.tasks_on(body["object"]["id"]).values()
    assert task["properties"]["title"] == "Review internal connections from workstation5.theshire.local"
    assert "172.18.39.6 (workstation6.theshire.local): 5985 WinRM" in task["properties"]["description"]


def test_cli_exits_1_when_a_host_query_failed(azure, capsys):
    from triage.cli import main

    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    azure.logs.load(body["workspaceId"], None)  # a workspace without the Defender tables
    assert main(["run", "--incident", str(case / "incident.json"), "--format", "json", "--dry-run"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "failed" and "not in this workspace" in doc["hosts"][0]["message"]


def test_an_incident_without_an_id_is_refused_before_any_query(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    del body["object"]["id"]
    response, _ = post(body)
    assert response.status_code == 400 and "no resource id" in json.loads(response.get_body())["message"]
    assert azure.logs.queries == []

