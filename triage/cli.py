"""Command line: `triage run --incident FILE [--data DIR|FILE.duckdb] [--format json|table|html] ...`
and `triage import DIR --into FILE.duckdb` (read an export once, triage many incidents over it).

Exit codes: 0 done or skipped, 2 bad input (request, data, settings), 1 failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from . import pipeline
from .config import Settings, hours
from .errors import AuthenticationError, BadInput, ConfigurationError, DataError, TriageError
from .incident import Overrides, loads, parse_time
from .result import TriageResult

if TYPE_CHECKING:
    from .exports import Progress


def _time_arg(value: str) -> datetime:
    try:
        moment = parse_time(value, "the time")
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if moment is None:
        raise argparse.ArgumentTypeError("an ISO 8601 time is needed, such as 2026-03-09T14:00:00Z")
    return moment


def _hours_arg(value: str) -> float:
    try:
        return hours("the number of hours", value)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triage", description="Lateral-movement triage for Microsoft Sentinel incidents.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="triage one incident")
    run.add_argument("--incident", required=True, type=Path, help="incident JSON (trigger body, incident resource, or {\"incidentArmId\"})")
    run.add_argument("--data", type=Path, help="folder of exported Defender data, or a FILE.duckdb written by `triage import`; "
                                               "omit to query the Log Analytics workspace")
    run.add_argument("--format", choices=("table", "json", "html"), default="table", help="output (default: table)")
    run.add_argument("--dry-run", action="store_true", help="print the comment instead of writing it to the incident")
    run.add_argument("--now", type=_time_arg, help="the current time, ISO 8601 (caps the window end; default: now)")
    run.add_argument("--lookback-hours", type=_hours_arg, help="hours before the first activity (default 48)")
    run.add_argument("--followup-hours", type=_hours_arg, help="hours after the last activity (default 24)")
    run.add_argument("--start", type=_time_arg, help="explicit window start, ISO 8601")
    run.add_argument("--end", type=_time_arg, help="explicit window end, ISO 8601")
    imp = sub.add_parser("import", help="read a folder of exported Defender data once into a DuckDB file, for `run --data FILE.duckdb`")
    imp.add_argument("folder", type=Path, help="folder of exported Defender data")
    imp.add_argument("--into", required=True, type=Path, help="the DuckDB file to write (replaced if it exists)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _import(args) if args.command == "import" else _run(args)
    except (BadInput, DataError, ConfigurationError) as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return 2
    except AuthenticationError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        if args.command == "run" and args.data is None:
            print("triage: without --data, triage reads the incident's workspace in Azure (sign in with `az login`, "
                  "or set AZURE_CLIENT_ID in Azure); to triage exported Defender data offline, pass --data DIR",
                  file=sys.stderr)
        return 1
    except TriageError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        payload = loads(args.incident.read_bytes())
    except OSError as exc:
        raise BadInput(f"{args.incident}: cannot read the incident file ({exc.strerror})") from None
    overrides = Overrides(args.lookback_hours, args.followup_hours, args.start, args.end)
    now = args.now or datetime.now(timezone.utc)
    if args.data is not None:
        from .embedded import EmbeddedEngine
        from .exports import load_folder, open_database

        if args.data.suffix == ".duckdb":
            engine = EmbeddedEngine(open_database(args.data))
        else:
            with _ProgressLine("reading") as progress:
                engine = EmbeddedEngine(load_folder(args.data, progress))
        outcome = pipeline.run(payload, lambda _: engine, settings, now, overrides)
        written = False
    else:
        import logging

        from .azure import services

        # azure-identity logs each credential it tried as a warning; the error below says it once.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)

        azure = services(settings)
        outcome = pipeline.run(payload, azure.engine_for, settings, now, overrides,
                               sentinel=azure.sentinel, write=not args.dry_run)
        written = not args.dry_run
    _print(outcome, args.format)
    if not written and args.format == "table":
        print("(dry run: the comment was not written to the incident; --format html shows it)", file=sys.stderr)
    # Any host whose query failed makes the run a failure for scripts, even if others answered.
    return 1 if any(h.status == "failed" for h in outcome.result.hosts) else 0


def _import(args: argparse.Namespace) -> int:
    from .exports import import_folder

    if args.into.suffix != ".duckdb":
        raise BadInput(f"{args.into}: the database file name must end in .duckdb (that is how `run --data` tells it from a folder)")
    started = time.monotonic()
    with _ProgressLine("importing") as progress:
        counts = import_folder(args.folder, args.into, progress)
    rows = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    print(f"{args.into}: {rows} rows in {time.monotonic() - started:.1f} s; "
          f"triage with `triage run --incident FILE --data {args.into}`", file=sys.stderr)
    return 0


class _ProgressLine:
    """A load's progress on stderr: one line redrawn in place on a terminal, a few plain
    lines otherwise; nothing for loads too short to notice."""

    def __init__(self, verb: str):
        self._verb = verb
        self._tty = sys.stderr.isatty()
        self._started = time.monotonic()
        self._shown = 0.0
        self._drawn = False

    def __enter__(self) -> _ProgressLine:
        return self

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._started < 1 or now - self._shown < (0.2 if self._tty else 5):
            return
        self._shown = now
        files = f"{p.done}/{p.total} files ({p.bytes / 1e6:,.0f} MB), " if p.total else ""
        line = f"{self._verb}: {files}{p.fraction:.0%} of this step, {now - self._started:.0f} s"
        print(f"\r{line}\x1b[K" if self._tty else line, end="" if self._tty else "\n", file=sys.stderr, flush=True)
        self._drawn = True

    def __exit__(self, *_: object) -> None:
        if self._drawn and self._tty:
            print(file=sys.stderr)


def _print(outcome: pipeline.Outcome, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(outcome.result.to_json(), indent=1))
    elif fmt == "html":
        print(outcome.comment_html)
    else:
        _table(outcome.result)


def _table(result: TriageResult) -> None:
    from rich.console import Console
    from rich.table import Table

    from .comment import summary_text

    # Piped output is not a terminal and would be 80 columns: too narrow for device names.
    # Nothing printed is markup: titles and names from the data may hold square brackets.
    terminal = Console()
    console = Console(width=terminal.width if terminal.is_terminal else 180, markup=False, highlight=False)
    window = result.window.to_json() if result.window else {"start": "?", "end": "?"}
    console.print(f"Incident {result.incident.number or ''} {result.incident.title or result.incident.arm_id or ''}", style="bold")
    console.print(f"Window {window['start']} → {window['end']}   engine: {result.engine}   status: {result.status}")
    if result.skipped_reason:
        console.print(f"Skipped: {result.skipped_reason}")
    else:
        console.print(summary_text(result))
    for host in result.hosts:
        by = f" (by {host.matched_by}: {host.selector_value})" if host.matched_by else ""
        status = "not searched" if host.status == "unidentified" else host.status.replace("_", " ")
        line = f"\nHost {host.host_name}{by}: {status}"
        console.print(line + (f" — {host.message}" if host.message else ""))
        for device in host.devices:
            table = Table(title=f"{device.device_name}: {len(device.connections)} internal address(es)", title_justify="left")
            for column in ("", "Last seen", "Remote IP", "Remote device", "Ports", "Count", "First seen", "Process", "Account"):
                table.add_column(column, no_wrap=column != "Account", overflow="fold")
            for c, x in zip(device.connections, device.context):
                table.add_row(x.flags, c.LastSeen.strftime("%Y-%m-%d %H:%M:%S"), c.RemoteIP, c.RemoteDeviceName or "(no device)",
                              ", ".join(x.Services), str(c.ConnectionCount),
                              c.FirstSeen.strftime("%Y-%m-%d %H:%M:%S"), c.InitiatingProcessFileName or "",
                              c.InitiatingProcessAccountUpn or c.InitiatingProcessAccountSid or "")
            console.print(table)
            if device.failed:
                failed = Table(title="failed or attempted connections (none succeeded)", title_justify="left")
                for column in ("Remote IP", "Failed", "Attempted", "Ports", "Last seen"):
                    failed.add_column(column)
                for f in device.failed:
                    failed.add_row(f.RemoteIP, str(f.Failed), str(f.Attempted), ", ".join(map(str, f.Ports)),
                                   f.LastSeen.strftime("%Y-%m-%d %H:%M:%S"))
                console.print(failed)
