"""The benchmark: prints the figures BENCHMARKS.md records.

    .venv/bin/python -m benchmarks.run                # 1 M and 10 M rows (generates them once)
    .venv/bin/python -m benchmarks.run --sizes 1m     # the quick one

For each size and input format: the embedded engine (the product), the hand-written
DuckDB SQL over the same tables, and pandas, each in its own process (time to open the
data, first and second incident, peak memory), with the ratios and whether the three
answers agree. Then the import-once path (`triage import`, then incidents over the
DuckDB file), the cold import time of the entry points, and the pipeline's own
per-incident overhead with the engines' answers taken as given.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .generate import Generated, Size, generate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
SIZES = {"1m": Size(1000, 5, 200), "10m": Size(2000, 5, 1000)}
# 10 M rows of JSON envelopes are 14 GB of text: generating them alone takes longer than
# the rest of the run, so that size is Parquet unless --formats asks for more.
FORMATS = {"1m": "parquet,jsonl", "10m": "parquet"}


@dataclass(frozen=True)
class Measured:
    figures: dict[str, Any]
    peak_mb: float

    @property
    def total_s(self) -> float:
        return self.figures["open_s"] + self.figures["first_s"]


def child(*args: str) -> tuple[str, float]:
    """Run `python -m benchmarks.<args>`; its stdout and its own peak memory in MB."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args)}")
    return out, usage.ru_maxrss / 1024


def measure(implementation: str, data: Path, incident: Path) -> Measured:
    out, peak = child("benchmarks.measure", implementation, str(data), str(incident))
    return Measured(json.loads(out), peak)


def generated_apart(folder: Path, size: Size, formats: tuple[str, ...]) -> Generated:
    """`generate` in a process of its own: writing the data takes gigabytes, and on Linux a
    child's peak memory (ru_maxrss) starts from its parent's at fork, so this process must
    stay small for the children's figures to be their own."""
    with get_context("spawn").Pool(1) as pool:
        return pool.apply(generate, (folder, size, formats))


def engines(size_name: str, formats: list[str]) -> None:
    folder = DATA / size_name
    generated = generated_apart(folder, SIZES[size_name], tuple(formats))
    print(f"\n## {SIZES[size_name].rows:,} DeviceNetworkEvents rows ({size_name}), incident on {generated.compromised[0]}")
    print("| format | implementation | open s | 1st incident s | 2nd incident s | open + 1st s | peak MB | rows | answer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fmt in formats:
        data = folder / fmt
        results = {impl: measure(impl, data, generated.incident) for impl in ("embedded", "product", "sql", "pandas")}
        digests = {m.figures["digest"] for m in results.values()}
        for impl, m in results.items():
            f = m.figures
            print(f"| {fmt} | {impl} | {f['open_s']:.2f} | {f['first_s']:.2f} | {f['second_s']:.2f} | {m.total_s:.2f} "
                  f"| {m.peak_mb:.0f} | {f['rows']} | {'agree' if len(digests) == 1 else f['digest']} |")
        emb, sql, pandas = results["embedded"], results["sql"], results["pandas"]
        print(f"\n{fmt}: embedded / hand-written SQL: {emb.total_s / sql.total_s:.2f}x (open + 1st incident), "
              f"{emb.figures['second_s'] / sql.figures['second_s']:.2f}x (2nd incident); "
              f"embedded is {pandas.total_s / emb.total_s:.1f}x faster than pandas (open + 1st incident)\n")
    imported(size_name, folder, generated.incident, formats)


def imported(size_name: str, folder: Path, incident: Path, formats: list[str]) -> None:
    """`triage import DIR --into FILE.duckdb` once, then incidents over the file."""
    for fmt in formats:
        database = folder / f"{fmt}.duckdb"
        database.unlink(missing_ok=True)
        started = time.perf_counter()
        _, peak = child("triage", "import", str(folder / fmt), "--into", str(database))
        took = time.perf_counter() - started
        print(f"import-once ({size_name}, {fmt}): `triage import` {took:.2f} s (peak {peak:.0f} MB, "
              f"{database.stat().st_size / 1e6:.0f} MB file); then")
        for implementation in ("embedded", "product"):
            m = measure(implementation, database, incident)
            print(f"- {implementation}: open {m.figures['open_s']:.2f} s, 1st incident {m.figures['first_s']:.2f} s, "
                  f"2nd incident {m.figures['second_s']:.2f} s, peak {m.peak_mb:.0f} MB")


def cold_imports() -> None:
    """Wall time of a fresh interpreter importing each entry point, minus a bare interpreter."""
    def best(code: str) -> float:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
            times.append(time.perf_counter() - started)
        return min(times)

    bare = best("pass")
    print(f"\n## Cold import (best of 7, interpreter start-up of {bare * 1000:.0f} ms subtracted)")
    for module in ("function_app", "triage.cli"):
        print(f"- `import {module}`: {(best(f'import {module}') - bare) * 1000:.0f} ms")


def overhead(incidents: int = 300) -> None:
    """Parse, bind, render, write per incident, the engines' answers taken as given."""
    from triage import pipeline
    from triage.config import Settings
    from triage.engine import Answer

    from triage import query

    from .measure import NOW, embedded, open_data, parameters

    payload, p = parameters(DATA / "1m" / "incident.json")
    answer = embedded(open_data(DATA / "1m" / "parquet"), p)
    within = query.narrowed(p, answer.devices)
    answers = {query.matched_devices(p): Answer(rows=[{"DeviceName": d} for d in answer.devices]),
               query.lateral_movement(within): Answer(rows=[c.to_json() for c in answer.rows]),
               query.failed_connections(within): Answer(rows=[]),
               query.baseline(within, query.baseline_window(p.window, Settings().baseline_days)): Answer(rows=[])}

    class GivenAnswers:
        name = "given"
        term_index = True

        def run(self, kql: str, window: Any) -> Answer:
            return answers[kql]

    class Sentinel:
        def write_comment(self, arm_id: str, html: str) -> str:
            return "comment"

    engine, sentinel, settings = GivenAnswers(), Sentinel(), Settings()
    times = []
    for _ in range(incidents):
        started = time.perf_counter()
        outcome = pipeline.run(json.loads(json.dumps(payload)), lambda _: engine, settings, NOW,
                               sentinel=sentinel, write=True)  # type: ignore[arg-type]
        with redirect_stdout(io.StringIO()):
            print(json.dumps(outcome.result.to_json()))
        times.append(time.perf_counter() - started)
    mean = statistics.mean(times)
    print(f"\n## Pipeline overhead ({len(answer.rows)} rows per incident, answers given, {incidents} incidents)")
    print(f"- {mean * 1000:.2f} ms per incident (median {statistics.median(times) * 1000:.2f} ms), {1 / mean:.0f} incidents/s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Triage benchmarks (see BENCHMARKS.md).")
    p.add_argument("--sizes", default="1m,10m")
    p.add_argument("--formats", help="parquet,jsonl (default: both at 1m, parquet at 10m)")
    args = p.parse_args(argv)
    print(f"# Benchmarks ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    for size in args.sizes.split(","):
        engines(size, (args.formats or FORMATS[size]).split(","))
    cold_imports()
    overhead()


if __name__ == "__main__":
    main()
