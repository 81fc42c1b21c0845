"""Fault injection: the next API calls fail as planned (a status, a disconnect, a lost answer, a delay,
or ``hold``: kept waiting, unanswered, until the control API releases them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

FAILURE_MODES = ("status", "disconnect", "drop_response", "delay", "hold")
HOLD_SECONDS = 30.0  # the longest a held request waits for its release


@dataclass
class FailurePlan:
    remaining: int
    mode: str = "status"
    status: int = 503
    match: str = ""
    seconds: float = 0.0
    release: threading.Event = field(default_factory=threading.Event, repr=False)

    def describe(self) -> dict:
        return {
            "remaining": self.remaining,
            "mode": self.mode,
            "status": self.status,
            "match": self.match,
            "seconds": self.seconds,
        }


class PlanBook(Protocol):
    """Where the plans are kept (the simulator's store)."""

    lock: threading.RLock
    failures: list[FailurePlan]
    holding: list[FailurePlan]


def add_failure(
    book: PlanBook,
    *,
    count: int = 1,
    mode: str = "status",
    status: int = 503,
    match: str = "",
    seconds: float = 0.0,
) -> FailurePlan:
    if mode not in FAILURE_MODES:
        raise ValueError(f"mode must be one of {', '.join(FAILURE_MODES)}")
    if count < 1:
        raise ValueError("count must be at least 1")
    plan = FailurePlan(
        remaining=int(count), mode=mode, status=int(status), match=match, seconds=float(seconds)
    )
    with book.lock:
        book.failures.append(plan)
    return plan


def take_failure(book: PlanBook, path: str) -> FailurePlan | None:
    """The failure planned for this API call, if any (each plan covers its next ``count`` calls)."""
    with book.lock:
        for plan in book.failures:
            if plan.match in path:
                plan.remaining -= 1
                if plan.remaining <= 0:
                    book.failures.remove(plan)
                return plan
    return None


def hold(book: PlanBook, plan: FailurePlan) -> None:
    """Keep a request waiting until ``release_held()`` (at most ``plan.seconds``, or ``HOLD_SECONDS``)."""
    with book.lock:
        book.holding.append(plan)
    try:
        plan.release.wait(plan.seconds or HOLD_SECONDS)
    finally:
        with book.lock:
            if plan in book.holding:
                book.holding.remove(plan)


def held(book: PlanBook) -> int:
    """How many requests are being held right now."""
    with book.lock:
        return len(book.holding)


def release_held(book: PlanBook) -> int:
    """Let every held request go on (to be processed and answered); how many there were."""
    with book.lock:
        for plan in book.holding:
            plan.release.set()
        return len(book.holding)
