"""One measurement, in a process of its own so that its peak memory is its own.

`python -m benchmarks.measure IMPLEMENTATION DATA INCIDENT` prints one JSON line:
the time to open the data, to answer the incident once and a second time, and a digest
of the answer (so the three implementations can be compared without shipping rows).
IMPLEMENTATION is `embedded` (triage.exports + the section 4 KQL on duckdb-kql),
`product` (the whole pipeline.run, all four queries), `sql`
(benchmarks.baselines.handwritten_sql over the same tables) or `pandas`.
DATA is a data folder or a DuckDB file written by `triage import`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from triage import pipeline, query
from triage.config import Settings
from triage.incident import loads, parse_incident
from triage.window import search_window

from . import baselines

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def parameters(incident_path: Path) -> tuple[Any, query.Parameters]:
    payload = loads(incident_path.read_bytes())
    settings = Settings()
    incident = parse_incident(payload)
    host = incident.hosts[0]
    assert host.selector is not None
    window = search_window(incident, settings, NOW)
    return payload, query.Parameters(host.selector, window, settings.excluded_processes, settings.excluded_accounts)


def open_data(data: Path) -> Any:
    from triage.exports import load_folder, open_database

    return open_database(data) if data.suffix == ".duckdb" else load_folder(data)


def embedded(con: Any, p: query.Parameters) -> baselines.Incident:
    """The embedded engine on the queries of SPEC.md section 4 (the devices matched and
    their rows): exactly what the baselines compute."""
    from triage.embedded import EmbeddedEngine
    from triage.result import Connection

    engine = EmbeddedEngine(con)
    p = replace(p, term_index=engine.term_index)
    devices = tuple(r["DeviceName"] for r in engine.run(query.matched_devices(p), p.window).rows)
    lateral = query.lateral_movement(query.narrowed(p, devices))
    rows = tuple(Connection.from_row(r) for r in engine.run(lateral, p.window).rows)
    return baselines.Incident(devices, rows)


def product(con: Any, payload: Any) -> baselines.Incident:
    """The whole run as the CLI does it: all four queries of an incident (issue 6 adds
    the failed attempts and the baseline), the result model and the comment."""
    from triage.embedded import EmbeddedEngine

    engine = EmbeddedEngine(con)
    host = pipeline.run(payload, lambda _: engine, Settings(), NOW).result.hosts[0]
    return baselines.Incident(tuple(d.device_name for d in host.devices),
                              tuple(c for d in host.devices for c in d.connections))


def digest(answer: baselines.Incident) -> str:
    return hashlib.sha256(repr(answer).encode()).hexdigest()[:16]


def measure(implementation: str, data: Path, incident_path: Path) -> dict[str, Any]:
    payload, p = parameters(incident_path)
    started = time.perf_counter()
    if implementation == "pandas":
        events, info = baselines.read_with_pandas(data)
        run = lambda: baselines.with_pandas(events, info, p)  # noqa: E731
    else:
        con = open_data(data)
        run = {"embedded": lambda: embedded(con, p), "product": lambda: product(con, payload),
               "sql": lambda: baselines.handwritten_sql(con, p)}[implementation]
    opened = time.perf_counter()
    answer = run()
    first = time.perf_counter()
    again = run()
    second = time.perf_counter()
    assert again == answer
    return {"open_s": opened - started, "first_s": first - opened, "second_s": second - first,
            "rows": len(answer.rows), "devices": len(answer.devices), "digest": digest(answer)}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))))
