"""Offline checks of the deployment in infra/ (the Bicep CLI and Azure are not reachable).

* every .bicep file parses (tree-sitter-bicep);
* structural tests on the parsed templates: module wiring, role definition GUIDs and
  their scopes, the identity wiring, the Sentinel trigger -> queue path, and the app
  settings against triage/config.py SETTINGS (both directions);
* a checkov gate that reads checkov's JSON summary, so that a parse error (on which
  checkov still exits 0) fails it, as does any failed or undocumented-suppressed check.

checkov lives in its own virtualenv (it pins packaging and friends below what the app
uses). Create it with:

    python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov==3.3.30
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
sys.path.insert(0, str(ROOT))

from triage.config import SETTINGS  # noqa: E402

tree_sitter = pytest.importorskip("tree_sitter")
tree_sitter_bicep = pytest.importorskip("tree_sitter_bicep")

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_INSTALL = "python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov==3.3.30"

# Azure built-in role definitions (ids are the same in every tenant), from
# learn.microsoft.com/azure/role-based-access-control/built-in-roles.
BUILT_IN_ROLES = {
    "3b03c2da-16b3-4a49-8834-0f8130efdd3b": "Log Analytics Data Reader",
    "3e150937-b8fe-4cfb-8069-0eaf05ecd056": "Microsoft Sentinel Responder",
    "8d289c81-5878-46d4-8554-54e1e3d8b5cb": "Microsoft Sentinel Reader",
    "f4c81013-99ee-4d62-a7ee-b3f1f648599a": "Microsoft Sentinel Automation Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# Roles that must never be handed out by this deployment (too broad).
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "ab8e14d6-4a74-4a29-9ba8-549422addade": "Microsoft Sentinel Contributor",
    "73c42c96-874c-492b-b04d-ab87d138a893": "Log Analytics Reader",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}

# App settings read by the Functions host rather than by triage/ (each with why).
HOST_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri": "host locks/keys blobs, identity-based",
    "AzureWebJobsStorage__queueServiceUri": "queue trigger and queue output binding",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "which user-assigned identity",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where telemetry goes (no secret: local auth off)",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra ID auth for telemetry",
}

QUEUE_NAME = "triage-requests"


# --------------------------------------------------------------------------- parsing


class Expr(str):
    """A Bicep expression that is not a plain literal, kept as its source text."""


def _text(node) -> str:
    return node.text.decode("utf-8")


def _named(node):
    return [c for c in node.named_children if c.type != "comment"]


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), raw)


def to_value(node):
    """Bicep literal -> Python value; anything computed -> Expr(source)."""
    kind = node.type
    if kind == "object":
        result = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue  # comments, nested resource declarations
            parts = _named(prop)
            key, val = parts[0], parts[-1]
            result[to_value(key) if key.type == "string" else _text(key)] = to_value(val)
        return result
    if kind == "array":
        return [to_value(c) for c in _named(node)]
    if kind == "string":
        if any(c.type == "interpolation" for c in node.named_children):
            return Expr(_text(node))
        raw = _text(node)
        quote = "'''" if raw.startswith("'''") else "'"
        return _unescape(raw[len(quote) : -len(quote)]) if quote == "'" else raw[3:-3]
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "number":
        return int(_text(node))
    if kind == "null":
        return None
    return Expr(_text(node))


@dataclass
class Decl:
    kind: str  # param | var | resource | module | output
    name: str
    type: str | None = None  # resource type@api or module path or param type
    value: object = None  # body / default / value
    condition: Expr | None = None
    existing: bool = False
    decorators: dict = field(default_factory=dict)
    comment: str = ""  # the // lines right above the declaration
    source: str = ""


@dataclass
class Template:
    path: Path
    text: str
    decls: list[Decl]

    def of(self, kind: str) -> dict[str, Decl]:
        return {d.name: d for d in self.decls if d.kind == kind}

    @property
    def params(self):
        return self.of("param")

    @property
    def vars(self):
        return self.of("var")

    @property
    def resources(self):
        return self.of("resource")

    @property
    def modules(self):
        return self.of("module")

    @property
    def outputs(self):
        return self.of("output")

    def resources_of_type(self, prefix: str) -> list[Decl]:
        return [d for d in self.decls if d.kind == "resource" and d.type.split("@")[0] == prefix]


def syntax_errors(source: bytes) -> list[str]:
    tree = _PARSER.parse(source)
    errors = []

    def walk(node):
        if node.type == "ERROR" or node.is_missing:
            line, col = node.start_point
            errors.append(f"line {line + 1} col {col + 1}: {node.text[:60]!r}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return errors


def _decorators(node) -> dict:
    result = {}
    for dec in node.named_children:
        call = dec.named_children[0] if dec.named_children else None
        if call is None or call.type != "call_expression":
            continue
        fn = _text(call.child_by_field_name("function"))
        args = _named(call.child_by_field_name("arguments"))
        result[fn.split(".")[-1]] = to_value(args[0]) if args else None
    return result


def parse_template(path: Path) -> Template:
    source = path.read_bytes()
    errors = syntax_errors(source)
    assert not errors, f"{path}: {errors}"
    root = _PARSER.parse(source).root_node
    decls: list[Decl] = []
    comments: list[str] = []
    decorators: dict = {}
    kinds = {
        "parameter_declaration": "param",
        "variable_declaration": "var",
        "resource_declaration": "resource",
        "module_declaration": "module",
        "output_declaration": "output",
    }
    for node in root.named_children:
        if node.type == "comment":
            comments.append(_text(node))
            continue
        if node.type == "decorators":
            decorators = _decorators(node)
            continue
        kind = kinds.get(node.type)
        if kind is None:
            comments, decorators = [], {}
            continue
        parts = _named(node)
        decl = Decl(kind=kind, name=_text(parts[0]), decorators=decorators,
                    comment="\n".join(comments), source=_text(node))
        if kind in ("resource", "module"):
            decl.type = to_value(parts[1])
            decl.existing = any(c.type == "existing" for c in node.children)
            body = parts[-1]
            if body.type == "if_statement":
                decl.condition = Expr(_text(_named(body)[0]))
                body = _named(body)[-1]
            decl.value = to_value(body)
        elif kind == "param":
            decl.type = _text(parts[1])
            decl.value = to_value(parts[2]) if len(parts) > 2 else None
        elif kind == "output":
            decl.type = _text(parts[1])
            decl.value = to_value(parts[-1])
        else:
            decl.value = to_value(parts[-1])
        decls.append(decl)
        comments, decorators = [], {}
    return Template(path, source.decode("utf-8"), decls)


BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@pytest.fixture(scope="module")
def t() -> dict[str, Template]:
    """Templates by path relative to infra/, e.g. 'main.bicep', 'modules/function.bicep'."""
    return {p.relative_to(INFRA).as_posix(): parse_template(p) for p in BICEP_FILES}


def settings(template: Template, var: str) -> dict:
    """A [{name, value}] app-settings array variable -> {name: value}; names must be unique."""
    entries = template.vars[var].value
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate app setting in {var}"
    assert all(set(e) == {"name", "value"} for e in entries)
    return {e["name"]: e["value"] for e in entries}


def _role_guid(template: Template, expr: str) -> str:
    """roleDefinitionId expression -> GUID, resolving roles.<name> through the `roles` var."""
    match = re.fullmatch(
        r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', (roles\.(\w+)|'([0-9a-f-]{36})')\)",
        expr,
    )
    assert match, f"roleDefinitionId must be a built-in role id: {expr}"
    if match.group(3):
        return match.group(3)
    return template.vars["roles"].value[match.group(2)]


# --------------------------------------------------------------------------- syntax


def test_the_expected_bicep_files_exist():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {
        "main.bicep",
        "modules/identity.bicep",
        "modules/workspace-lookup.bicep",
        "modules/monitoring.bicep",
        "modules/storage.bicep",
        "modules/function.bicep",
        "modules/playbook.bicep",
        "modules/app-rbac.bicep",
        "modules/sentinel-access.bicep",
    } <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_syntax(path):
    assert syntax_errors(path.read_bytes()) == []


def test_syntax_check_catches_errors():
    assert syntax_errors(b"resource r 'Microsoft.Web/sites@2024-04-01' = {\n  name: \n")
    assert syntax_errors(b"param x string = 'unterminated\n")


# --------------------------------------------------------------------------- main + azd


def test_main_parameters(t):
    params = t["main.bicep"].params
    # the five the issue asks for; only the workspace, prefix and location are required
    for required in ("sentinelWorkspaceResourceId", "namePrefix", "location"):
        assert params[required].value is None, required
    assert params["enableAutomationRule"].type == "bool" and params["enableAutomationRule"].value is True
    assert params["useHttpTrigger"].type == "bool" and params["useHttpTrigger"].value is False
    others = set(params) - {"sentinelWorkspaceResourceId", "namePrefix", "location"}
    assert all(params[name].value is not None for name in others), "everything else needs a default"
    assert params["sentinelAutomationPrincipalId"].value == ""
    assert "98785600-1bb7-4fb9-b9fa-19afe2c8a360" in params["sentinelAutomationPrincipalId"].decorators["description"]
    for name, decl in params.items():
        assert decl.decorators.get("description"), f"param {name} needs a @description"
    assert "targetScope = 'subscription'" in t["main.bicep"].text


def test_main_parameters_json_feeds_main(t):
    data = json.loads((INFRA / "main.parameters.json").read_text())
    values = {k: v["value"] for k, v in data["parameters"].items()}
    params = t["main.bicep"].params
    assert set(values) <= set(params)
    required = {n for n, d in params.items() if d.value is None}
    assert required <= set(values), "azd must supply every required parameter"
    assert values["namePrefix"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["sentinelWorkspaceResourceId"] == "${SENTINEL_WORKSPACE_RESOURCE_ID}"
    assert values["enableAutomationRule"] == "${ENABLE_AUTOMATION_RULE=true}"
    assert values["useHttpTrigger"] == "${USE_HTTP_TRIGGER=false}"


def test_azure_yaml():
    text = (ROOT / "azure.yaml").read_text()
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "services:" in lines
    service = lines[lines.index("services:") + 1].strip()
    assert service == "api:"
    block = lines[lines.index("services:") + 2 : lines.index("services:") + 5]
    assert {b.strip() for b in block} == {"project: .", "language: python", "host: function"}
    assert "  path: infra" in lines and "  provider: bicep" in lines


def test_modules_exist_and_get_their_parameters(t):
    for template in t.values():
        for module in template.modules.values():
            target = (template.path.parent / module.type).resolve()
            assert target.exists(), f"{module.name}: {module.type}"
            child = t[target.relative_to(INFRA).as_posix()]
            passed = set(module.value.get("params", {}))
            declared = set(child.params)
            required = {n for n, d in child.params.items() if d.value is None}
            assert passed <= declared, f"{module.name} passes unknown params {passed - declared}"
            assert required <= passed, f"{module.name} misses required params {required - passed}"


def test_workspace_resource_id_is_split_for_the_cross_scope_modules(t):
    main = t["main.bicep"]
    assert main.vars["workspaceIdParts"].value == "split(sentinelWorkspaceResourceId, '/')"
    sample = "/subscriptions/1111/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/law-sentinel"
    parts = sample.split("/")
    index = {name: int(re.fullmatch(r"workspaceIdParts\[(\d)\]", main.vars[name].value).group(1))
             for name in ("workspaceSubscriptionId", "workspaceResourceGroupName", "workspaceName")}
    assert parts[index["workspaceSubscriptionId"]] == "1111"
    assert parts[index["workspaceResourceGroupName"]] == "rg-soc"
    assert parts[index["workspaceName"]] == "law-sentinel"
    workspace_scope = "resourceGroup(workspaceSubscriptionId, workspaceResourceGroupName)"
    assert main.modules["workspace"].value["scope"] == workspace_scope
    assert main.modules["sentinelAccess"].value["scope"] == workspace_scope
    assert main.modules["sentinelAccess"].type == "modules/sentinel-access.bicep"
    for name in ("identity", "monitoring", "storage", "functionApp", "playbook", "appRbac"):
        assert main.modules[name].value["scope"] == "rg", name


# --------------------------------------------------------------------------- function app


def test_function_app_is_linux_flex_consumption_python_311(t):
    fn = t["modules/function.bicep"]
    plan = fn.resources["plan"].value
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True  # Linux
    site = fn.resources["site"]
    assert site.type.startswith("Microsoft.Web/sites@")
    assert site.value["kind"] == "functionapp,linux"
    runtime = site.value["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "pythonVersion"}
    assert fn.params["pythonVersion"].value == "3.11"
    assert fn.params["pythonVersion"].decorators["allowed"] == ["3.11"]
    # the version requirements.txt / pyproject.toml are written for
    assert "Python 3.11" in (ROOT / "requirements.txt").read_text()
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()
    # azd finds the app by this tag, named like the service in azure.yaml
    assert "'azd-service-name': 'api'" in site.value["tags"]


def test_app_settings_match_what_the_code_reads(t):
    fn = t["modules/function.bicep"]
    triage_settings = settings(fn, "triageSettings")
    host_settings = settings(fn, "hostSettings")
    # every setting the code reads is set, and every triage setting set is read
    assert set(triage_settings) == set(SETTINGS)
    # the rest are read by the Functions host, each for a known reason
    assert set(host_settings) == set(HOST_SETTINGS)
    app_settings = fn.resources["site"].value["properties"]["siteConfig"]["appSettings"]
    assert app_settings == "concat(hostSettings, triageSettings)"
    # no other place sets app settings
    assert not fn.resources_of_type("Microsoft.Web/sites/config")
    assert fn.text.count("appSettings:") == 1


def test_no_secrets_in_app_settings(t):
    fn = t["modules/function.bicep"]
    all_settings = {**settings(fn, "triageSettings"), **settings(fn, "hostSettings")}
    for name, value in all_settings.items():
        assert not re.search(r"AccountKey|SharedAccess|listKeys|__accountKey|InstrumentationKey", f"{name}={value}"), name
    assert "AzureWebJobsStorage" not in all_settings, "a plain AzureWebJobsStorage would be a connection string"


def test_settings_values_are_wired_from_main_with_the_code_defaults(t):
    main, fn = t["main.bicep"], t["modules/function.bicep"]
    triage = settings(fn, "triageSettings")
    call = main.modules["functionApp"].value["params"]
    main_params = main.params

    def origin(setting):
        """Follow SETTING -> function.bicep param -> expression passed by main.bicep."""
        return call[triage[setting]]

    assert origin("LOG_ANALYTICS_WORKSPACE_ID") == "workspace.outputs.customerId"
    assert t["modules/workspace-lookup.bicep"].outputs["customerId"].value == "workspace.properties.customerId"
    assert t["modules/workspace-lookup.bicep"].resources["workspace"].existing
    assert origin("AZURE_CLIENT_ID") == "identity.outputs.clientId"
    assert t["modules/identity.bicep"].outputs["clientId"].value == "identity.properties.clientId"
    assert origin("ARM_ENDPOINT") == "environment().resourceManager"
    # every other setting comes from a main.bicep parameter whose default is config.py's
    for setting in set(SETTINGS) - {"LOG_ANALYTICS_WORKSPACE_ID", "AZURE_CLIENT_ID", "ARM_ENDPOINT"}:
        main_param = origin(setting)
        assert main_param in main_params, f"{setting} should come from a main.bicep parameter"
        assert setting in main_params[main_param].decorators["description"], main_param
        assert main_params[main_param].value == SETTINGS[setting][0], f"{main_param} default differs from config.py"


# --------------------------------------------------------------------------- identity


def test_one_user_assigned_identity_is_used_for_everything(t):
    main, fn = t["main.bicep"], t["modules/function.bicep"]
    call = main.modules["functionApp"].value["params"]
    assert call["identityId"] == "identity.outputs.id"
    assert call["identityClientId"] == "identity.outputs.clientId"
    site = fn.resources["site"].value
    assert site["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {Expr("'${identityId}'"): {}}}
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    deployment = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    host = settings(fn, "hostSettings")
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert host["AzureWebJobsStorage__queueServiceUri"] == "storage.properties.primaryEndpoints.queue"
    assert host["AzureWebJobsStorage__blobServiceUri"] == "storage.properties.primaryEndpoints.blob"
    assert host["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "'ClientId=${identityClientId};Authorization=AAD'"
    assert settings(fn, "triageSettings")["AZURE_CLIENT_ID"] == "identityClientId"
    # the function's principal gets the roles, in both role modules
    assert main.modules["appRbac"].value["params"]["functionPrincipalId"] == "identity.outputs.principalId"
    assert main.modules["sentinelAccess"].value["params"]["functionPrincipalId"] == "identity.outputs.principalId"
    # the storage account the host uses is the one main created
    assert call["storageAccountName"] == "storage.outputs.name"


# --------------------------------------------------------------------------- secure defaults


def test_secure_defaults(t):
    fn, st, mon = t["modules/function.bicep"], t["modules/storage.bicep"], t["modules/monitoring.bicep"]
    site = fn.resources["site"].value["properties"]
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert site["siteConfig"]["ftpsState"] == "Disabled"
    policies = {d.value["name"]: d.value["properties"]["allow"]
                for d in fn.resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert policies == {"ftp": False, "scm": False}
    account = st.resources["storage"].value["properties"]
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    assert st.resources["deploymentContainer"].value["properties"]["publicAccess"] == "None"
    assert mon.resources["appInsights"].value["properties"]["DisableLocalAuth"] is True


def test_diagnostic_logs_go_to_the_application_insights_workspace(t):
    main = t["main.bicep"]
    expected = {
        "modules/function.bicep": ("site", "FunctionAppLogs"),
        "modules/playbook.bicep": ("playbook", "WorkflowRuntime"),
        "modules/storage.bicep": ("queueService", "StorageWrite"),
    }
    for path, (scope, category) in expected.items():
        settings = t[path].resources_of_type("Microsoft.Insights/diagnosticSettings")
        scoped = [d for d in settings if d.value["scope"] == scope]
        assert scoped, f"{path}: no diagnostic setting on {scope}"
        assert category in {log["category"] for log in scoped[0].value["properties"]["logs"]}
        assert scoped[0].value["properties"]["workspaceId"] == "logAnalyticsId"
    for name in ("storage", "functionApp", "playbook"):
        assert main.modules[name].value["params"]["logAnalyticsId"] == "monitoring.outputs.logAnalyticsId"
    mon = t["modules/monitoring.bicep"]
    assert mon.resources["appInsights"].value["properties"]["WorkspaceResourceId"] == "logAnalytics.id"
    assert mon.outputs["logAnalyticsId"].value == "logAnalytics.id"


# --------------------------------------------------------------------------- roles


def _role_assignments(t):
    found = {}
    for path, template in t.items():
        for decl in template.resources_of_type("Microsoft.Authorization/roleAssignments"):
            props = decl.value["properties"]
            found[(path, decl.name)] = {
                "role": _role_guid(template, props["roleDefinitionId"]),
                "scope": decl.value.get("scope"),
                "principal": props["principalId"],
                "principalType": props["principalType"],
                "condition": decl.condition,
                "comment": " ".join(line.lstrip("/ ").strip() for line in decl.comment.splitlines()),
                "name": decl.value["name"],
            }
    return found


EXPECTED_ROLES = {
    # (file, symbol): (role GUID, scope, principal, words the comment must contain)
    ("modules/sentinel-access.bicep", "functionQueryReader"):
        ("3b03c2da-16b3-4a49-8834-0f8130efdd3b", "workspace", "functionPrincipalId", ("KQL", "DeviceNetworkEvents")),
    ("modules/sentinel-access.bicep", "functionSentinelResponder"):
        ("3e150937-b8fe-4cfb-8069-0eaf05ecd056", "workspace", "functionPrincipalId", ("comments", "entities")),
    ("modules/sentinel-access.bicep", "playbookSentinelReader"):
        ("8d289c81-5878-46d4-8554-54e1e3d8b5cb", "workspace", "playbookPrincipalId", ("incident trigger",)),
    ("modules/app-rbac.bicep", "functionBlobOwner"):
        ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "storage", "functionPrincipalId", ("AzureWebJobsStorage", "deployment package")),
    ("modules/app-rbac.bicep", "functionQueueContributor"):
        ("974c5e8b-45b9-4653-ba55-5f855dd0fb88", "storage", "functionPrincipalId", ("queue trigger", "poison", "output binding")),
    ("modules/app-rbac.bicep", "functionMetricsPublisher"):
        ("3913510d-42f4-4e42-8a64-420c390055eb", "appInsights", "functionPrincipalId", ("telemetry",)),
    ("modules/app-rbac.bicep", "playbookQueueSender"):
        ("c6a89b2d-59bc-44d0-9896-0f6e12d7b80a", "storage::queueService::queue", "playbookPrincipalId", ("queue",)),
    ("modules/app-rbac.bicep", "sentinelRunsPlaybooks"):
        ("f4c81013-99ee-4d62-a7ee-b3f1f648599a", None, "sentinelAutomationPrincipalId", ("automation rule", "playbook")),
}


def test_role_assignments_are_exactly_the_expected_least_privilege_set(t):
    found = _role_assignments(t)
    assert set(found) == set(EXPECTED_ROLES)
    for key, (role, scope, principal, words) in EXPECTED_ROLES.items():
        got = found[key]
        assert got["role"] == role, f"{key}: {BUILT_IN_ROLES.get(got['role'], got['role'])} != {BUILT_IN_ROLES[role]}"
        assert got["scope"] == scope, key
        assert got["principal"] == principal, key
        assert got["principalType"] == "ServicePrincipal", key
        assert BUILT_IN_ROLES[role].split()[-1] in got["comment"] or BUILT_IN_ROLES[role] in got["comment"], key
        for word in words:
            assert word.lower() in got["comment"].lower(), f"{key}: comment should say why ({word})"
        # idempotent, unique names: scope + principal + role
        assert got["name"].startswith("guid(") and principal in got["name"], key
    assert not {f["role"] for f in found.values()} & set(FORBIDDEN_ROLES)


def test_role_guids_are_declared_once_with_their_names(t):
    for path in ("modules/app-rbac.bicep", "modules/sentinel-access.bicep"):
        roles = t[path].vars["roles"].value
        for guid in roles.values():
            assert guid in BUILT_IN_ROLES, f"{path}: unknown role {guid}"
    text = "\n".join(tpl.text for tpl in t.values())
    for guid in re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text):
        assert guid in BUILT_IN_ROLES or guid == "98785600-1bb7-4fb9-b9fa-19afe2c8a360", guid


def test_conditional_role_assignments(t):
    found = _role_assignments(t)
    assert found[("modules/app-rbac.bicep", "sentinelRunsPlaybooks")]["condition"] == "(!empty(sentinelAutomationPrincipalId))"
    assert found[("modules/app-rbac.bicep", "playbookQueueSender")]["condition"] == "(playbookUsesQueue)"
    main = t["main.bicep"]
    assert main.modules["appRbac"].value["params"]["playbookUsesQueue"] == "!useHttpTrigger"
    assert main.modules["appRbac"].value["params"]["sentinelAutomationPrincipalId"] == "sentinelAutomationPrincipalId"
    assert main.modules["appRbac"].value["params"]["playbookPrincipalId"] == "playbook.outputs.principalId"
    assert main.modules["sentinelAccess"].value["params"]["playbookPrincipalId"] == "playbook.outputs.principalId"
    assert t["modules/playbook.bicep"].outputs["principalId"].value == "playbook.identity.principalId"


def test_workspace_scoped_assignments_target_the_existing_workspace(t):
    access = t["modules/sentinel-access.bicep"]
    workspace = access.resources["workspace"]
    assert workspace.existing
    assert workspace.type.startswith("Microsoft.OperationalInsights/workspaces@")
    assert workspace.value["name"] == "workspaceName"
    assert t["main.bicep"].modules["sentinelAccess"].value["params"]["workspaceName"] == "workspaceName"


# --------------------------------------------------------------------------- playbook


def test_queue_is_created_and_named_like_the_trigger(t):
    main, st = t["main.bicep"], t["modules/storage.bicep"]
    assert main.vars["queueName"].value == QUEUE_NAME
    for module in ("storage", "playbook", "appRbac"):
        assert main.modules[module].value["params"]["queueName"] == "queueName", module
    queue = st.resources["queue"]
    assert queue.type.startswith("Microsoft.Storage/storageAccounts/queueServices/queues@")
    assert queue.value == {"parent": "queueService", "name": "queueName"}
    # once the triggers exist, they must read the queue the playbook writes
    function_app = ROOT / "function_app.py"
    if function_app.exists() and "queue_name" in function_app.read_text():
        code = function_app.read_text()
        assert QUEUE_NAME in code
        # queue trigger and output binding use the identity-based AzureWebJobsStorage settings
        connections = set(re.findall(r'connection="([^"]+)"', code))
        assert connections <= {"AzureWebJobsStorage"}


def test_sentinel_trigger_uses_the_managed_identity_connection(t):
    pb = t["modules/playbook.bicep"]
    connection = pb.resources["sentinelConnection"].value
    assert connection["properties"]["api"]["id"] == (
        "subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')"
    )
    assert connection["properties"]["parameterValueType"] == "Alternative"
    workflow = pb.resources["playbook"].value
    assert workflow["identity"] == {"type": "SystemAssigned"}
    definition = workflow["properties"]["definition"]
    trigger = definition["triggers"]["Microsoft_Sentinel_incident"]
    assert trigger["type"] == "ApiConnectionWebhook"
    assert trigger["inputs"]["path"] == "/incident-creation"
    assert trigger["inputs"]["body"] == {"callback_url": "@{listCallbackUrl()}"}
    assert trigger["inputs"]["host"]["connection"]["name"] == "@parameters('$connections')['azuresentinel']['connectionId']"
    sentinel = workflow["properties"]["parameters"]["$connections"]["value"]["azuresentinel"]
    assert sentinel["connectionId"] == "sentinelConnection.id"
    assert sentinel["connectionProperties"] == {"authentication": {"type": "ManagedServiceIdentity"}}
    assert definition["actions"] == "useHttpTrigger ? httpActions : queueActions"


def test_trigger_body_is_put_on_the_queue_base64_with_the_playbook_identity(t):
    pb, main = t["modules/playbook.bicep"], t["main.bicep"]
    request = pb.vars["queueRequest"].value
    assert request["method"] == "POST"
    assert request["uri"] == "'${queueEndpoint}${queueName}/messages'"  # Queue REST API "Put Message"
    assert request["authentication"] == {"type": "ManagedServiceIdentity", "audience": "https://storage.azure.com/"}
    assert request["headers"]["x-ms-version"] >= "2017-11-09"  # first version that accepts Entra tokens
    assert request["headers"]["x-ms-date"] == "@{utcNow('R')}"  # RFC 1123, required on authorized requests
    assert main.modules["playbook"].value["params"]["queueEndpoint"] == "storage.outputs.queueEndpoint"
    assert t["modules/storage.bicep"].outputs["queueEndpoint"].value == "storage.properties.primaryEndpoints.queue"
    # the message is the trigger body itself, base64-encoded (host.json messageEncoding "base64")
    assert pb.vars["incidentExpression"].value == "base64(string(triggerBody()))"
    actions = pb.vars["queueActions"].value
    assert actions["Encode_incident"]["inputs"] == "'@${incidentExpression}'"
    branch = actions["Fits_in_one_queue_message"]
    assert branch["type"] == "If"
    assert branch["expression"]["and"][0]["lessOrEquals"] == ["@length(outputs('Encode_incident'))", "maxQueueMessageChars"]
    assert pb.vars["maxQueueMessageChars"].value == 65536
    put = branch["actions"]["Put_incident_on_triage_queue"]
    assert put["type"] == "Http"
    assert put["inputs"] == Expr(
        "union(queueRequest, {\n          body: '<QueueMessage><MessageText>@{outputs(\\'Encode_incident\\')}"
        "</MessageText></QueueMessage>'\n        })"
    )
    slim = pb.vars["slimIncidentExpression"].value
    assert slim.startswith("base64(string(setProperty(triggerBody(), 'object'")
    assert "removeProperty(triggerBody()?['object']?['properties'], 'Alerts')" in slim
    assert "Put_incident_without_alerts_on_triage_queue" in branch["else"]["actions"]
    assert "functionKey" not in json.dumps(actions), "no function key on the queue path"


def test_host_json_decodes_base64_queue_messages():
    """The playbook base64-encodes; the queue trigger must decode base64 (the host's default)."""
    host_json = ROOT / "host.json"
    if not host_json.exists():
        pytest.skip("host.json not written yet")
    host = json.loads(host_json.read_text())
    encoding = host.get("extensions", {}).get("queues", {}).get("messageEncoding", "base64")
    assert encoding.lower() == "base64"


def test_logic_app_base64_message_round_trips_to_what_the_function_accepts():
    """What base64(string(triggerBody())) produces, decoded as the Functions host does."""
    import base64

    body = {"workspaceId": "0f8e2b6a-1c3d-4e5f-8a7b-9c0d1e2f3a4b", "workspaceInfo": {"SubscriptionId": "s"},
            "object": {"id": "/subscriptions/s/.../incidents/1", "properties": {"incidentNumber": 1}}}
    text = base64.b64encode(json.dumps(body).encode()).decode()
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", text), "no XML escaping needed in <MessageText>"
    assert json.loads(base64.b64decode(text)) == body


def test_http_variant_calls_the_function_with_a_key(t):
    pb = t["modules/playbook.bicep"]
    action = pb.vars["httpActions"].value["Send_incident_to_triage_function"]
    assert action["type"] == "Http"
    assert action["inputs"]["method"] == "POST"
    assert action["inputs"]["uri"] == "'https://${functionHostName}/api/triage'"
    assert action["inputs"]["headers"]["x-functions-key"] == "@parameters('functionKey')"
    assert action["inputs"]["body"] == "@triggerBody()"
    assert action["inputs"]["headers"]["Prefer"] == "respond-async"  # 202 + queue: Logic Apps wait <= 120 s
    assert action["operationOptions"] == "DisableAsyncPattern"  # take the 202, do not poll
    assert action["runtimeConfiguration"]["secureData"]["properties"] == ["inputs"]
    workflow = pb.resources["playbook"].value["properties"]
    assert workflow["definition"]["parameters"]["functionKey"]["type"] == "SecureString"
    key = workflow["parameters"]["functionKey"]["value"]
    assert key == "useHttpTrigger ? listKeys('${site.id}/host/default', '2024-04-01').functionKeys.default : ''"
    assert pb.text.count("listKeys(") == 1
    main = t["main.bicep"]
    assert main.modules["playbook"].value["params"]["useHttpTrigger"] == "useHttpTrigger"
    assert main.modules["playbook"].value["params"]["functionHostName"] == "functionApp.outputs.defaultHostName"


def test_automation_rule_runs_the_playbook_on_incident_creation(t):
    access, main = t["modules/sentinel-access.bicep"], t["main.bicep"]
    rule = access.resources["automationRule"]
    assert rule.type.startswith("Microsoft.SecurityInsights/automationRules@")
    assert rule.condition == "(enableAutomationRule)"
    assert rule.value["scope"] == "workspace"
    assert rule.value["name"].startswith("guid(")
    logic = rule.value["properties"]["triggeringLogic"]
    assert logic == {"isEnabled": True, "triggersOn": "Incidents", "triggersWhen": "Created", "conditions": []}
    (action,) = rule.value["properties"]["actions"]
    assert action["actionType"] == "RunPlaybook"
    assert action["actionConfiguration"] == {"logicAppResourceId": "playbookResourceId", "tenantId": "playbookTenantId"}
    params = main.modules["sentinelAccess"].value["params"]
    assert params["playbookResourceId"] == "playbook.outputs.id"
    assert params["playbookTenantId"] == "tenant().tenantId"
    assert params["enableAutomationRule"] == "enableAutomationRule"
    # Sentinel must be allowed to run the playbook before the rule is created
    assert main.modules["sentinelAccess"].value["dependsOn"] == ["appRbac"]


# --------------------------------------------------------------------------- checkov


def _skip_comments() -> dict[str, str]:
    found = {}
    for path in BICEP_FILES:
        for match in re.finditer(r"//\s*checkov:skip=([A-Z0-9_]+):([^\n]*)", path.read_text()):
            found[match.group(1)] = match.group(2).strip()
    return found


def run_checkov(directory: Path) -> dict:
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "bicep", "-o", "json", "--skip-download"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (bicep,) = [r for r in reports if r.get("check_type") == "bicep"]
    return bicep


def gate(report: dict) -> list[str]:
    """Reasons the checkov report fails the gate (empty list: it passes)."""
    problems = []
    summary = report["summary"]
    if summary["parsing_errors"] or report["results"].get("parsing_errors"):
        problems.append(f"parse errors: {report['results'].get('parsing_errors')}")
    if summary["resource_count"] == 0:
        problems.append("no resource scanned")
    for failed in report["results"].get("failed_checks", []):
        problems.append(f"{failed['check_id']} {failed['resource']} ({failed['file_path']}): {failed['check_name']}")
    return problems


# CI installs checkov (make test), so there a missing checkov fails instead of skipping.
needs_checkov = pytest.mark.skipif(not CHECKOV.exists() and not os.environ.get("CI"), reason=f"checkov venv absent; create it with: {CHECKOV_INSTALL}")


@needs_checkov
def test_checkov_gate_passes_on_infra():
    report = run_checkov(INFRA)
    assert gate(report) == []
    assert report["summary"]["passed"] > 10
    skipped = {r["check_id"]: r for r in report["results"].get("skipped_checks", [])}
    comments = _skip_comments()
    # no stale suppressions, and each one explained
    assert set(skipped) == set(comments)
    deploy = (ROOT / "README.md").read_text()
    for check_id, reason in comments.items():
        assert len(reason) > 30, f"{check_id}: give a reason"
        assert check_id in deploy, f"{check_id} must be documented in README.md (Deploy)"
    # the controls the issue requires are checked, not suppressed
    passed = {r["check_id"] for r in report["results"]["passed_checks"]}
    for required in ("CKV_AZURE_14", "CKV_AZURE_15", "CKV_AZURE_78", "CKV_AZURE_44", "CKV_AZURE_3", "CKV_AZURE_34"):
        assert required in passed, required


@needs_checkov
def test_checkov_gate_fails_on_parse_errors(tmp_path):
    (tmp_path / "broken.bicep").write_text("param x string\nresource r 'Microsoft.Web/sites@2024-04-01' = {\n  name: \n")
    report = run_checkov(tmp_path)
    problems = gate(report)
    assert problems and "parse errors" in problems[0]


@needs_checkov
def test_checkov_gate_fails_on_failed_checks(tmp_path):
    (tmp_path / "weak.bicep").write_text(
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  name: 'weak'\n  location: 'westeurope'\n  kind: 'StorageV2'\n  sku: {\n    name: 'Standard_LRS'\n  }\n"
        "  properties: {\n    minimumTlsVersion: 'TLS1_0'\n    supportsHttpsTrafficOnly: false\n  }\n}\n"
    )
    problems = gate(run_checkov(tmp_path))
    assert any(p.startswith("CKV_AZURE_44") for p in problems)
    assert any(p.startswith("CKV_AZURE_3 ") for p in problems)
