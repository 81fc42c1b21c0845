"""What every row reports, and how the machine looked while it ran: no Django in here.

A row answers a ``Result``: our figure, the baseline's figure measured in the same run, their ratio
and whether the issue's goal is met. ``loadavg`` and ``rss_kib`` read /proc, so that the figures
always travel with the load they were taken under.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB (VmRSS), ``None`` when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 is the median); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Goal:
    """``ratio >= at_least`` or ``ratio <= at_most``, plus any extra named conditions (e.g. a p99)."""

    text: str
    at_least: float | None = None
    at_most: float | None = None

    def met_by(self, ratio: float) -> bool:
        if self.at_least is None and self.at_most is None:
            return True  # no ratio asked for: the row's extra conditions decide
        if math.isnan(ratio):
            return False
        if self.at_least is not None and ratio < self.at_least:
            return False
        return not (self.at_most is not None and ratio > self.at_most)


@dataclass
class Result:
    row: str
    title: str
    ours: float
    baseline: float | None
    unit: str
    ratio: float
    goal: Goal
    extra_conditions: dict[str, bool] = field(default_factory=dict)  # name -> met
    notes: list[str] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""
    seconds: float = 0.0  # wall time of the whole row, set-up included

    @property
    def met(self) -> bool:
        return self.goal.met_by(self.ratio) and all(self.extra_conditions.values())


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def result_lines(result: Result) -> list[str]:
    """One row as printed: ``ours / baseline / ratio / goal / met?``, then its notes and load."""
    verdict = "MET" if result.met else "NOT MET"
    lines = [
        f"[{result.row}] {result.title}",
        f"    ours {fmt(result.ours, result.unit)} / baseline {fmt(result.baseline, result.unit)} / "
        f"ratio {fmt(result.ratio)} / goal {result.goal.text} / {verdict}",
    ]
    lines += [f"    {note}" for note in result.notes]
    lines.append(
        f"    load average before {result.load_before}, after {result.load_after}; "
        f"row took {result.seconds:.0f} s"
    )
    return lines


def summary_lines(results: list[Result]) -> list[str]:
    """The table of the issue, one line per row."""
    goal_width = max([len("goal"), *(len(result.goal.text) for result in results)])
    header = f"{'row':<4} {'ours':>16} {'baseline':>16} {'ratio':>8}  {'goal':<{goal_width}}  met?"
    lines = [header, "-" * len(header)]
    for result in results:
        lines.append(
            f"{result.row:<4} {fmt(result.ours, result.unit):>16} {fmt(result.baseline, result.unit):>16} "
            f"{fmt(result.ratio):>8}  {result.goal.text:<{goal_width}}  {'yes' if result.met else 'NO'}"
        )
    return lines


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds`` (monotonic clock)."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            parents.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current == pid and not os.path.exists(f"/proc/{pid}"):
            continue
        found.append(current)
        todo.extend(parents.get(current, []))
    return found
