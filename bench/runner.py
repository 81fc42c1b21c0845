"""Run the rows, print each as it finishes, then the table, the memory figures and the checks.

Imported once Django is set up (``bench/__main__.py``): the row modules import the shop's models and
services at their top.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback

from django.db import connection

from bench.measure import Result, loadavg, result_lines, summary_lines
from bench.plan import ROWS, Bench
from checkout.audit import stock_audit_run


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def run(bench: Bench, rows: list[str]) -> int:
    results: list[Result] = []
    for row in rows:
        name, module_name = ROWS[row]
        before, started = loadavg(), time.monotonic()
        say("", f"--- row {row} ({name}) starting, load average {before}")
        try:
            result = importlib.import_module(module_name).run(bench)
        except Exception:
            traceback.print_exc()
            bench.check(f"row {row} ({name}) ran to its end", False, "see the traceback above")
            continue
        finally:
            connection.close()
        result.load_before, result.load_after = before, loadavg()
        result.seconds = time.monotonic() - started
        results.append(result)
        say(*result_lines(result))

    say("", "=== results (ours / baseline / ratio / goal / met?)", *summary_lines(results))
    if bench.memory:
        say("", "=== memory after the run (RSS)")
        say(*(f"{what}: {_mib(kib)}" for what, kib in bench.memory.items()))

    drifts = stock_audit_run()
    bench.check(
        "no oversell, no drift: checkout.audit.stock_audit_run()", not drifts, "; ".join(map(str, drifts))
    )
    say("", "=== correctness checks")
    for check in bench.checks:
        say(f"{'PASS' if check.ok else 'FAIL'}  {check.name}" + (f": {check.detail}" if check.detail else ""))
    say("", f"load average at the end: {loadavg()} ({os.cpu_count()} CPUs)")
    failed = [check for check in bench.checks if not check.ok]
    if failed:
        print(f"{len(failed)} check(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _mib(kib: int | None) -> str:
    return "gone" if kib is None else f"{kib / 1024:.0f} MiB"
