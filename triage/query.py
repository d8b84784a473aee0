"""The KQL of SPEC.md section 4, kept as `.kql` files, with its parameters bound safely.

Each `.kql` file opens with a parameter block of `let Name = <literal>;` lines between
`// --- parameters ---` and `// --- end parameters ---`, so an analyst can paste the
file into the portal and edit the values. `bind` replaces exactly that block with
values encoded here as KQL literals: a value can never end its literal or add an
operator, whatever it contains.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from importlib import resources

from .incident import DeviceSelector
from .window import Window, iso

LATERAL_MOVEMENT = "lateral_movement.kql"
MATCHED_DEVICES = "matched_devices.kql"
FAILED_CONNECTIONS = "failed_connections.kql"
BASELINE = "baseline.kql"

_BLOCK = re.compile(r"// --- parameters ---\n(?P<body>.*?)// --- end parameters ---\n", re.DOTALL)
_LET = re.compile(r"^let (?P<name>[A-Za-z_][A-Za-z0-9_]*) = ", re.MULTILINE)
# Control characters have no business in any value we bind; refusing them keeps the
# encoding trivially correct (no newline can split the parameter line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Value = str | bool | datetime | Sequence[str]


@cache
def template(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def parameter_names(name: str) -> list[str]:
    match = _BLOCK.search(template(name))
    if match is None:
        raise ValueError(f"{name} has no parameter block")
    return _LET.findall(match.group("body"))


def literal(value: Value) -> str:
    """A Python value as a KQL literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return f"datetime({iso(value)})"
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError(f"control characters cannot be bound into a query: {value!r}")
        # JSON's escaping of '"' and '\' is exactly KQL's for a double-quoted literal.
        return json.dumps(value, ensure_ascii=False)
    return "dynamic([" + ", ".join(literal(item) for item in value) + "])"


def bind(name: str, values: Mapping[str, Value]) -> str:
    """The query text with its parameter block replaced by `values`, one `let` each."""
    expected = parameter_names(name)
    if sorted(expected) != sorted(values):
        raise ValueError(f"{name} takes parameters {expected}, got {sorted(values)}")
    block = "".join(f"let {key} = {literal(values[key])};\n" for key in expected)
    return _BLOCK.sub(lambda _: block, template(name), count=1)


@dataclass(frozen=True)
class Parameters:
    selector: DeviceSelector
    window: Window
    excluded_processes: tuple[str, ...]
    excluded_accounts: tuple[str, ...]
    # The device names matched_devices.kql found for a host-name selector in this window:
    # the same rows as the prefix test, and an exact-name filter the engines can index.
    devices: tuple[str, ...] = ()
    # Whether the engine answers `has_any` from a term index (Log Analytics does); without
    # one (the embedded engine), the pre-filter it feeds would cost more than it saves.
    term_index: bool = True


def _selector(p: Parameters) -> dict[str, Value]:
    return {"SelectorKind": p.selector.kind, "SelectorValue": p.selector.value}


def narrowed(p: Parameters, names: Sequence[str]) -> Parameters:
    """`p` for the queries after matched_devices.kql found `names`: a host name's prefix test
    scans every row's name, while the names it matched in this window select the same rows
    by equality, which the engines can push down to their scans."""
    return replace(p, devices=tuple(names)) if p.selector.kind == "hostname" and names else p


def _window(p: Parameters) -> dict[str, Value]:
    return {"WindowStart": p.window.start, "WindowEnd": p.window.end}


def _devices(p: Parameters) -> dict[str, Value]:
    """The selector of the queries that take `DeviceNames`: the matched names when known."""
    if p.devices:
        return {"SelectorKind": "devices", "SelectorValue": p.selector.value, "DeviceNames": list(p.devices)}
    return _selector(p) | {"DeviceNames": []}


def _exclusions(p: Parameters) -> dict[str, Value]:
    return {"ExcludedProcesses": [v.lower() for v in p.excluded_processes],
            "ExcludedAccounts": [v.lower() for v in p.excluded_accounts]}


def lateral_movement(p: Parameters) -> str:
    return bind(LATERAL_MOVEMENT, _devices(p) | _window(p) | _exclusions(p) | {"UseTermIndex": p.term_index})


def failed_connections(p: Parameters) -> str:
    return bind(FAILED_CONNECTIONS, _devices(p) | _window(p) | _exclusions(p))


def baseline_window(window: Window, days: int) -> Window:
    """The `days` before the window; its end is exclusive in baseline.kql, as it is the window's start."""
    return Window(window.start - timedelta(days=days), window.start)


def baseline(p: Parameters, before: Window) -> str:
    return bind(BASELINE, _devices(p) | {"BaselineStart": before.start, "BaselineEnd": before.end} | _exclusions(p)
                | {"UseTermIndex": p.term_index})


def matched_devices(p: Parameters) -> str:
    return bind(MATCHED_DEVICES, _selector(p) | _window(p))
