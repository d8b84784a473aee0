"""Settings, read from the environment (Function App settings, local.settings.json, shell).

Read lazily through `Settings.from_env()`: importing this module does nothing.
Every setting the code reads is listed in `SETTINGS`, which README, the
`local.settings.json` example and `infra/` are checked against.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigurationError
from .services import PortCatalog

# name -> (default, what it is for). A default of None means "unset unless given".
SETTINGS: dict[str, tuple[str | None, str]] = {
    "LOG_ANALYTICS_WORKSPACE_ID": (None, "Workspace (customer) id, a GUID, used when the request carries no workspaceId."),
    "LOG_ANALYTICS_ENDPOINT": ("https://api.loganalytics.io/v1", "Log Analytics query endpoint; change it for sovereign clouds."),
    "ARM_ENDPOINT": ("https://management.azure.com", "Azure Resource Manager endpoint for the Sentinel API."),
    "SENTINEL_API_VERSION": ("2025-09-01", "api-version of the Microsoft.SecurityInsights calls."),
    "AZURE_CLIENT_ID": (None, "Client id of the user-assigned managed identity; unset uses DefaultAzureCredential."),
    "TRIAGE_LOOKBACK_HOURS": ("48", "Hours searched before the incident's first activity."),
    "TRIAGE_FOLLOWUP_HOURS": ("24", "Hours searched after the incident's last activity (never past now)."),
    "TRIAGE_EXCLUDED_PROCESSES": ("sensendr.exe", "Comma-separated initiating process names to ignore (case-insensitive)."),
    "TRIAGE_EXCLUDED_ACCOUNTS": ("local service", "Comma-separated initiating account names to ignore (case-insensitive)."),
    "TRIAGE_QUERY_BUDGET_SECONDS": ("150", "Seconds all Log Analytics queries of one run may take, retries included; "
                                           "keep it under the 230 s HTTP limit and host.json functionTimeout."),
    "TRIAGE_ADMIN_PORTS": ("", "Extra remote-administration/file-sharing ports to emphasise, comma-separated, "
                               "optionally named: 5900=VNC,8443."),
    "TRIAGE_BASELINE_DAYS": ("14", "Days before the window whose destinations are not 'new'; 0 turns it off."),
    "TRIAGE_ADD_LABELS": ("false", "true: add labels such as lateral-movement:smb to the incident (changes the incident)."),
    "TRIAGE_RAISE_SEVERITY_TO": ("", "High, Medium or Low: raise the incident to it when the rule matches; empty: never."),
    "TRIAGE_RAISE_SEVERITY_WHEN": ("admin", "The rule: admin (an internal device reached over an admin protocol) "
                                            "or any (any internal connection)."),
    "TRIAGE_CREATE_TASK": ("false", "true: add an incident task asking the analyst to review the connections."),
}

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _split(name: str, value: str) -> tuple[str, ...]:
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ConfigurationError(f"{name} must be names separated by commas, without control characters")
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


def hours(name: str, value: str) -> float:
    """A number of hours from 0 to 90 days (settings and the CLI's window options)."""
    try:
        hours = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of hours, got {value!r}") from None
    if not 0 <= hours <= 24 * 90:
        raise ConfigurationError(f"{name} must be between 0 and 2160 hours, got {value!r}")
    return hours


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    # Below 10 s no query can finish; above 540 s the run outlives the longest function timeout.
    if not 10 <= seconds <= 540:
        raise ConfigurationError(f"{name} must be between 10 and 540 seconds, got {value!r}")
    return seconds


def _flag(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ConfigurationError(f"{name} must be true or false, got {value!r}")
    return value.lower() == "true"


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    match = next((c for c in choices if c.lower() == value.lower()), None)
    if match is None:
        raise ConfigurationError(f"{name} must be one of {', '.join(c or '(empty)' for c in choices)}; got {value!r}")
    return match


def _days(name: str, value: str) -> int:
    if not value.isdigit() or int(value) > 90:
        raise ConfigurationError(f"{name} must be a whole number of days from 0 to 90, got {value!r}")
    return int(value)


def _client_id(value: str) -> str | None:
    if value and not _GUID.match(value):
        raise ConfigurationError(f"AZURE_CLIENT_ID must be the managed identity's client id (a GUID); got {value!r}")
    return value or None


def _https(name: str, value: str) -> str:
    if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$", value):
        raise ConfigurationError(f"{name} must be an https:// URL such as {SETTINGS[name][0]}; got {value!r}")
    return value.rstrip("/")


def require_workspace_guid(value: str, source: str) -> str:
    """A Log Analytics workspace id is the workspace's GUID, not its name or resource id."""
    if not _GUID.match(value.strip()):
        raise ConfigurationError(
            f"{source} must be the workspace id (a GUID such as 0f8e2b6a-1c3d-4e5f-8a7b-9c0d1e2f3a4b), "
            f"not a workspace name or resource id; got {value!r}"
        )
    return value.strip().lower()


@dataclass(frozen=True)
class Settings:
    lookback_hours: float = 48.0
    followup_hours: float = 24.0
    excluded_processes: tuple[str, ...] = ("sensendr.exe",)
    excluded_accounts: tuple[str, ...] = ("local service",)
    workspace_id: str | None = None
    log_analytics_endpoint: str = SETTINGS["LOG_ANALYTICS_ENDPOINT"][0]  # type: ignore[assignment]
    arm_endpoint: str = SETTINGS["ARM_ENDPOINT"][0]  # type: ignore[assignment]
    sentinel_api_version: str = SETTINGS["SENTINEL_API_VERSION"][0]  # type: ignore[assignment]
    managed_identity_client_id: str | None = field(default=None, repr=False)
    query_budget_seconds: float = 150.0
    ports: PortCatalog = field(default_factory=PortCatalog)
    baseline_days: int = 14
    add_labels: bool = False
    raise_severity_to: str = ""  # "" never
    raise_severity_when: str = "admin"  # admin | any
    create_task: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str:
            """The setting's value, else its default; "" when it has neither."""
            return env.get(name, "").strip() or SETTINGS[name][0] or ""

        workspace = get("LOG_ANALYTICS_WORKSPACE_ID")
        return cls(
            lookback_hours=hours("TRIAGE_LOOKBACK_HOURS", get("TRIAGE_LOOKBACK_HOURS")),
            followup_hours=hours("TRIAGE_FOLLOWUP_HOURS", get("TRIAGE_FOLLOWUP_HOURS")),
            excluded_processes=_split("TRIAGE_EXCLUDED_PROCESSES", get("TRIAGE_EXCLUDED_PROCESSES")),
            excluded_accounts=_split("TRIAGE_EXCLUDED_ACCOUNTS", get("TRIAGE_EXCLUDED_ACCOUNTS")),
            workspace_id=require_workspace_guid(workspace, "LOG_ANALYTICS_WORKSPACE_ID") if workspace else None,
            log_analytics_endpoint=_https("LOG_ANALYTICS_ENDPOINT", get("LOG_ANALYTICS_ENDPOINT")),
            arm_endpoint=_https("ARM_ENDPOINT", get("ARM_ENDPOINT")),
            sentinel_api_version=get("SENTINEL_API_VERSION"),
            managed_identity_client_id=_client_id(get("AZURE_CLIENT_ID")),
            query_budget_seconds=_seconds("TRIAGE_QUERY_BUDGET_SECONDS", get("TRIAGE_QUERY_BUDGET_SECONDS")),
            ports=PortCatalog.with_extra(get("TRIAGE_ADMIN_PORTS")),
            baseline_days=_days("TRIAGE_BASELINE_DAYS", get("TRIAGE_BASELINE_DAYS")),
            add_labels=_flag("TRIAGE_ADD_LABELS", get("TRIAGE_ADD_LABELS")),
            raise_severity_to=_choice("TRIAGE_RAISE_SEVERITY_TO", get("TRIAGE_RAISE_SEVERITY_TO"),
                                      ("", "High", "Medium", "Low")),
            raise_severity_when=_choice("TRIAGE_RAISE_SEVERITY_WHEN", get("TRIAGE_RAISE_SEVERITY_WHEN"),
                                        ("admin", "any")),
            create_task=_flag("TRIAGE_CREATE_TASK", get("TRIAGE_CREATE_TASK")),
        )
