"""The Azure path: Log Analytics engine + Sentinel client, sharing one credential.

`services(settings)` only wires things together: no client talks to the network before
its first call, and the credential is built on the first token request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import Settings, require_workspace_guid
from .engine import Engine
from .errors import AuthenticationError, BadInput, ConfigurationError, TransientError
from .incident import Incident
from .pipeline import Sentinel


class LazyCredential:
    """The Function App's identity, as an azure-core token credential, built on the first
    token request. A user-assigned identity is named by AZURE_CLIENT_ID; without it,
    DefaultAzureCredential (system-assigned identity in Azure, `az login` on a laptop).

    Any failure to get a token becomes AuthenticationError: reported as such, never
    mistaken for an empty result. Tokens are returned, never logged.
    """

    def __init__(self, client_id: str | None):
        self._client_id = client_id
        self._credential: Any = None

    def _build(self) -> Any:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

            self._credential = (ManagedIdentityCredential(client_id=self._client_id) if self._client_id
                                else DefaultAzureCredential())
        return self._credential

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        who = f"the managed identity {self._client_id}" if self._client_id else "DefaultAzureCredential"
        try:
            return self._build().get_token(*scopes, **kwargs)
        except ClientAuthenticationError as exc:
            first_line = ((exc.message or "").strip().splitlines() or ["no reason given"])[0]
            raise AuthenticationError(f"could not get a token for {', '.join(scopes)} from {who}: {first_line}") from None
        except ServiceRequestError as exc:
            # The identity endpoint itself did not answer: worth a retry, and not Log Analytics' or Sentinel's fault.
            raise TransientError(f"could not reach the identity endpoint for {who}: {exc.message}") from None


@dataclass(frozen=True)
class AzureServices:
    engine_for: Callable[[Incident], Engine]
    sentinel: Sentinel


def workspace_for(incident: Incident, settings: Settings) -> str:
    """The request's workspaceId, else LOG_ANALYTICS_WORKSPACE_ID."""
    if incident.workspace_id:
        try:
            return require_workspace_guid(incident.workspace_id, "the request's workspaceId")
        except ConfigurationError as exc:
            raise BadInput(str(exc)) from None
    if settings.workspace_id:
        return settings.workspace_id
    raise ConfigurationError("no Log Analytics workspace: the request has no workspaceId and "
                             "LOG_ANALYTICS_WORKSPACE_ID is not set")


def services(settings: Settings) -> AzureServices:
    from .loganalytics import LogAnalyticsEngine, make_client
    from .sentinel import SentinelClient

    credential = LazyCredential(settings.managed_identity_client_id)
    logs = make_client(settings.log_analytics_endpoint, credential)

    def engine_for(incident: Incident) -> Engine:
        # One engine per run: its time budget starts now.
        return LogAnalyticsEngine(logs, workspace_for(incident, settings), settings.query_budget_seconds)

    return AzureServices(engine_for=engine_for,
                         sentinel=SentinelClient(settings.arm_endpoint, settings.sentinel_api_version, credential))
