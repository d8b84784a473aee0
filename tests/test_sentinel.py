"""The Sentinel client against the spec-checking contract server (real HTTPS, real token)."""

import time
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from contracts.sentinel_server import Fault
from triage.azure import LazyCredential
from triage.config import Settings
from triage.errors import AuthenticationError, TransientError, UpstreamError
from triage.sentinel import SentinelClient, comment_id, retry_after


def test_comment_id_is_uuid5_of_incident_and_product_whatever_the_casing(incident_id):
    lower = incident_id.replace("/Incidents/", "/incidents/")
    assert comment_id(incident_id) == comment_id(lower) == comment_id(incident_id.upper())
    assert uuid.UUID(comment_id(incident_id)).version == 5
    assert comment_id(incident_id) != comment_id(incident_id[:-1] + "0")


def test_writing_twice_keeps_one_comment_with_the_latest_text(azure, client, incident_id):
    first = client.write_comment(incident_id, "<p>one</p>")
    second = client.write_comment(incident_id.replace("/Incidents/", "/incidents/"), "<p>two</p>")
    assert first == second == comment_id(incident_id)
    comments = azure.sentinel.comments_on(incident_id)
    assert list(comments) == [first] and comments[first]["properties"]["message"] == "<p>two</p>"


def test_reads_incident_and_entities(client, incident_id):
    incident = client.get_incident(incident_id)
    assert incident["properties"]["incidentNumber"] == 4217
    entities = client.list_entities(incident_id)
    assert [e["kind"] for e in entities] == ["Host"]
    assert entities[0]["properties"]["hostName"] == "WORKSTATION5"


def test_conflict_is_retried_twice(azure, client, incident_id):
    azure.sentinel.fail(*[Fault("IncidentComments_CreateOrUpdate", 409)] * 2)
    assert client.write_comment(incident_id, "<p>x</p>") == comment_id(incident_id)
    assert azure.sentinel.calls == ["IncidentComments_CreateOrUpdate"] * 3


def test_a_third_conflict_is_transient(azure, client, incident_id):
    azure.sentinel.fail(*[Fault("IncidentComments_CreateOrUpdate", 409, {"Retry-After": "0"})] * 3)
    with pytest.raises(TransientError, match="conflict"):
        client.write_comment(incident_id, "<p>x</p>")
    assert azure.sentinel.calls == ["IncidentComments_CreateOrUpdate"] * 3


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers_wait_for_retry_after_in_seconds(azure, client, incident_id, status):
    azure.sentinel.fail(Fault("IncidentComments_CreateOrUpdate", status, {"Retry-After": "1"}, "TooManyRequests"))
    started = time.monotonic()
    client.write_comment(incident_id, "<p>x</p>")
    assert 1 <= time.monotonic() - started < 5
    assert len(azure.sentinel.comments_on(incident_id)) == 1


def test_retry_after_as_an_http_date_and_missing(azure, incident_id):
    waits = []
    settings = Settings.from_env()
    client = SentinelClient(settings.arm_endpoint, settings.sentinel_api_version,
                            LazyCredential(settings.managed_identity_client_id), sleep=waits.append)
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=8), usegmt=True)
    azure.sentinel.fail(Fault("Incidents_ListEntities", 429, {"Retry-After": when}, "TooManyRequests"),
                        Fault("Incidents_ListEntities", 503, {}, "ServiceUnavailable"))
    assert client.list_entities(incident_id)
    assert 6 <= waits[0] <= 8 and waits[1] == 4.0  # the default for a second attempt: 2 s doubled


def test_waiting_beyond_the_budget_is_transient_at_once(azure, client, incident_id):
    azure.sentinel.fail(Fault("IncidentComments_CreateOrUpdate", 429, {"Retry-After": "3600"}, "TooManyRequests"))
    started = time.monotonic()
    with pytest.raises(TransientError, match="within 20 s"):
        client.write_comment(incident_id, "<p>x</p>")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("status, code", [(400, "BadRequest"), (403, "AuthorizationFailed"), (404, "NotFound"),
                                          (405, "MethodNotAllowed")])
def test_refusals_are_never_retried_and_carry_the_api_code(azure, client, incident_id, status, code):
    azure.sentinel.fail(Fault("IncidentComments_CreateOrUpdate", status, {"Retry-After": "1"}, code))
    with pytest.raises(UpstreamError) as caught:
        client.write_comment(incident_id, "<p>x</p>")
    assert caught.value.code == code and caught.value.status == status and code in str(caught.value)
    assert azure.sentinel.calls == ["IncidentComments_CreateOrUpdate"]


def test_unknown_incident_is_the_api_404(azure, client, incident_id):
    with pytest.raises(UpstreamError, match="HTTP 404 NotFound") as caught:
        client.get_incident(incident_id[:-4] + "0000")
    assert caught.value.status == 404


def test_refused_token_is_an_authentication_error(azure, client, incident_id):
    azure.sentinel.fail(Fault("Incidents_Get", 401, code="InvalidAuthenticationToken"))
    with pytest.raises(AuthenticationError, match="InvalidAuthenticationToken"):
        client.get_incident(incident_id)


def test_api_version_comes_from_the_setting(azure, monkeypatch, incident_id):
    monkeypatch.setenv("SENTINEL_API_VERSION", "2019-01-01-preview")
    settings = Settings.from_env()
    client = SentinelClient(settings.arm_endpoint, settings.sentinel_api_version,
                            LazyCredential(settings.managed_identity_client_id))
    with pytest.raises(UpstreamError, match="InvalidApiVersionParameter"):
        client.get_incident(incident_id)
    assert azure.sentinel.violations == ["api-version '2019-01-01-preview' is not 2025-09-01"]
    azure.sentinel.violations.clear()


def test_retry_after_parsing():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after("7", now) == 7.0
    assert retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now) == 0.0
    assert retry_after(None, now) is None and retry_after("soon", now) is None


def test_error_bodies_of_any_shape_give_a_code_and_message():
    from triage.sentinel import _error

    assert _error('{"error": {"code": "AuthorizationFailed", "message": "no"}}') == ("AuthorizationFailed", "no")
    assert _error('{"error": "invalid_token"}') == ("invalid_token", "")
    assert _error("<html>bad gateway</html>") == ("", "<html>bad gateway</html>")
