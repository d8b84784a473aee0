"""The Log Analytics engine against the contract server (real HTTPS, real azure-monitor-query)."""

import time
from datetime import datetime, timezone

import pytest

from conftest import EXAMPLES, load_json
from contracts import loganalytics_server as la
from test_cases import comparable
from triage import pipeline
from triage.azure import services
from triage.config import Settings
from triage.errors import BadInput, ConfigurationError, TransientError

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def run(body, env=None):
    settings = Settings.from_env(env)
    azure = services(settings)
    return pipeline.run(body, azure.engine_for, settings, NOW).result


@pytest.mark.parametrize("name", ["otrf-psexec", "otrf-psremoting", "edge-a"])
def test_rows_equal_expected(azure, name):
    case = EXAMPLES / name
    result = run(azure.add_case(case))
    assert result.engine == "log-analytics" and result.status == "done"
    assert comparable(result.to_json()) == comparable(load_json(case / "expected.json"))


def test_query_carries_window_and_a_server_timeout_inside_the_budget(azure, monkeypatch):
    monkeypatch.setenv("TRIAGE_QUERY_BUDGET_SECONDS", "60")
    result = run(azure.add_case(EXAMPLES / "otrf-psexec"))
    first, second, failed, baseline = azure.logs.queries
    # The window, widened by a second each side; the KQL itself holds the exact bounds.
    assert first["timespan"] == "2020-09-18T16:16:57.794Z/2020-09-21T16:17:06.701Z"
    assert result.window.to_json() == {"start": "2020-09-18T16:16:58.794000Z", "end": "2020-09-21T16:17:05.701000Z"}
    waits = [int(q["prefer"].removeprefix("wait=")) for q in (first, second)]
    assert 45 <= waits[0] <= 55 and waits[1] <= waits[0]
    assert "DeviceNetworkInfo" in first["kql"] and "mv-expand" in second["kql"]
    assert '"ConnectionFailed", "ConnectionAttempt"' in failed["kql"] and failed["timespan"] == first["timespan"]
    # The baseline: the 14 days before the window, for "new destination".
    assert baseline["timespan"] == "2020-09-04T16:16:57.794Z/2020-09-18T16:16:59.794Z"


def test_partial_results_are_used_and_flagged(azure):
    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    azure.logs.fail(la.partial("The results of this query exceed the set limit"))
    result = run(body)
    assert result.status == "partial"
    host = result.hosts[0]
    assert host.partial and "exceed the set limit" in host.message
    assert comparable(result.to_json())["hosts"][0]["devices"] == comparable(load_json(case / "expected.json"))["hosts"][0]["devices"]


def test_throttling_with_retry_after_is_waited_out(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.fail(la.throttled("1"))
    started = time.monotonic()
    result = run(body)
    assert result.status == "done" and result.row_count == 2
    assert len(azure.logs.queries) == 5 and time.monotonic() - started >= 1


def test_retry_after_beyond_the_budget_is_not_waited_for(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.fail(la.throttled("3600"))
    started = time.monotonic()
    with pytest.raises(TransientError, match="HTTP 429"):
        run(body)
    assert time.monotonic() - started < 5 and len(azure.logs.queries) == 1


def test_gateway_timeouts_are_retried_then_transient(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.fail(*[la.gateway_timeout()] * 4)
    with pytest.raises(TransientError, match="HTTP 504"):
        run(body)
    assert len(azure.logs.queries) == 4  # one try and three retries


def test_a_single_gateway_timeout_is_recovered(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.fail(la.gateway_timeout())
    assert run(body).status == "done"


def test_missing_defender_tables_fail_the_host_without_retry(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    azure.logs.load(body["workspaceId"], None)
    result = run(body)
    assert result.status == "failed" and result.row_count == 0
    assert result.hosts[0].message.startswith("the Defender tables (DeviceNetworkEvents, DeviceNetworkInfo) are not in this workspace")
    assert len(azure.logs.queries) == 1


def test_workspace_from_the_setting_when_the_request_has_none(azure, monkeypatch):
    case = EXAMPLES / "otrf-psexec"
    body = azure.add_case(case)
    workspace = body.pop("workspaceId")
    monkeypatch.setenv("LOG_ANALYTICS_WORKSPACE_ID", workspace)
    assert comparable(run(body).to_json()) == comparable(load_json(case / "expected.json"))


@pytest.mark.parametrize("value", [
    "law-secops",
    "/subscriptions/7d3c1a90-5b2e-4f6a-8c1d-2e9f0b4a6c33/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/law",
])
def test_workspace_setting_must_be_a_guid(value):
    with pytest.raises(ConfigurationError, match="LOG_ANALYTICS_WORKSPACE_ID must be the workspace id"):
        Settings.from_env({"LOG_ANALYTICS_WORKSPACE_ID": value})


def test_request_workspace_must_be_a_guid(azure):
    body = azure.add_case(EXAMPLES / "otrf-psexec")
    body["workspaceId"] = "law-secops"
    with pytest.raises(BadInput, match="workspaceId must be the workspace id"):
        run(body)
    assert azure.logs.queries == []


@pytest.mark.parametrize("value", ["5", "600", "soon"])
def test_query_budget_must_be_sensible(value):
    with pytest.raises(ConfigurationError, match="TRIAGE_QUERY_BUDGET_SECONDS"):
        Settings.from_env({"TRIAGE_QUERY_BUDGET_SECONDS": value})


def test_the_term_index_pre_filter_keeps_every_holder(azure, tmp_path):
    # Log Analytics gets the DeviceNetworkInfo pre-filter (`has_any` over the addresses
    # seen); it must not lose a holder whose address is IPv4-mapped, second in its report,
    # or a prefix of another seen address, nor keep one nobody connected to.
    from builders import event, incident, info, write_folder
    from triage.embedded import EmbeddedEngine
    from triage.exports import load_folder

    events = [event("ws01", ip) for ip in ("10.0.0.1", "10.0.0.12", "10.0.0.5", "10.0.0.7")]
    infos = [info("srv1", ["10.0.0.1"]), info("srv12", ["10.0.0.12"]), info("srv5", ["::ffff:10.0.0.5"]),
             info("srv7", ["172.16.0.1", "10.0.0.7"]), info("srv100", ["10.0.0.100"])]
    folder = write_folder(tmp_path / "data", events, infos)
    body = incident({"hostName": "ws01"})
    azure.sentinel.add_incident(body["object"])
    azure.logs.load(body["workspaceId"], folder)
    result = run(body)
    lateral = azure.logs.queries[1]["kql"]
    assert "let UseTermIndex = true;" in lateral and "has_any (SeenIPTerms)" in lateral
    holders = {c.RemoteIP: c.RemoteDeviceName for d in result.hosts[0].devices for c in d.connections}
    assert holders == {"10.0.0.1": "srv1", "10.0.0.12": "srv12", "10.0.0.5": "srv5", "10.0.0.7": "srv7"}
    # The embedded engine skips the pre-filter and gives the same answer.
    offline = pipeline.run(body, lambda _: EmbeddedEngine(load_folder(folder)), Settings(), NOW).result
    assert "let UseTermIndex = false;" in offline.hosts[0].query
    assert offline.hosts[0].devices == result.hosts[0].devices


def test_without_a_client_id_the_system_assigned_identity_is_used(azure, monkeypatch):
    # No AZURE_CLIENT_ID: DefaultAzureCredential, which in a Function App reaches the
    # App Service identity endpoint without naming a client id (the system-assigned identity).
    monkeypatch.delenv("AZURE_CLIENT_ID")
    azure.identity.client_ids.clear()
    case = EXAMPLES / "otrf-psexec"
    result = run(azure.add_case(case))
    assert comparable(result.to_json()) == comparable(load_json(case / "expected.json"))
    assert azure.identity.client_ids and set(azure.identity.client_ids) == {None}
