import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from contracts.azurite import Azurite
from contracts.identity_server import IdentityServer
from contracts.loganalytics_server import LogAnalyticsServer
from contracts.sentinel_server import SentinelServer
from triage.azure import LazyCredential
from triage.config import Settings
from triage.sentinel import SentinelClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CASES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "expected.json").exists())


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(params=CASES)
def case(request) -> Path:
    return EXAMPLES / request.param


# --- Azure, on this machine: contract servers over real HTTPS with a test CA ---------

MANAGED_IDENTITY_CLIENT_ID = "5b1d3c2e-7f4a-4e6b-9c8d-1a2b3c4d5e6f"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(ca, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def identity_server(ca):
    server = IdentityServer(ca, MANAGED_IDENTITY_CLIENT_ID)
    yield server
    server.close()


@pytest.fixture(scope="session")
def log_analytics_server(ca, identity_server):
    server = LogAnalyticsServer(ca, identity_server)
    yield server
    server.server.close()


@pytest.fixture(scope="session")
def sentinel_server(ca, identity_server):
    server = SentinelServer(ca, identity_server)
    yield server
    server.server.close()


@dataclass
class AzureFake:
    identity: IdentityServer
    logs: LogAnalyticsServer
    sentinel: SentinelServer

    def add_case(self, case: Path) -> dict:
        """The case's incident in Sentinel and its data in the incident's workspace; returns the trigger body."""
        body = load_json(case / "incident.json")
        self.sentinel.add_incident(body["object"])
        self.logs.load(body["workspaceId"], case / "data")
        return body


@pytest.fixture
def azure(monkeypatch, ca_bundle, identity_server, log_analytics_server, sentinel_server) -> AzureFake:
    """The process environment of a Function App whose Azure is the contract servers."""
    for name in ("LOG_ANALYTICS_WORKSPACE_ID", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT",
                 "IMDS_ENDPOINT", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "TRIAGE_QUERY_BUDGET_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity_server.endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", identity_server.header_secret)
    monkeypatch.setenv("AZURE_CLIENT_ID", MANAGED_IDENTITY_CLIENT_ID)
    monkeypatch.setenv("LOG_ANALYTICS_ENDPOINT", log_analytics_server.url + "/v1")
    monkeypatch.setenv("ARM_ENDPOINT", sentinel_server.url)
    log_analytics_server.reset()
    sentinel_server.reset()
    yield AzureFake(identity_server, log_analytics_server, sentinel_server)
    assert sentinel_server.violations == [], "requests that break the Sentinel API spec"


@pytest.fixture(scope="session")
def azurite(ca, tmp_path_factory):
    server = Azurite(ca, tmp_path_factory.mktemp("azurite"))
    yield server
    server.close()


@pytest.fixture
def client(azure) -> SentinelClient:
    """The Sentinel client as the function builds it, talking to the contract server."""
    settings = Settings.from_env()
    return SentinelClient(settings.arm_endpoint, settings.sentinel_api_version,
                          LazyCredential(settings.managed_identity_client_id))


@pytest.fixture
def incident_id(azure) -> str:
    return azure.add_case(EXAMPLES / "otrf-psexec")["object"]["id"]
