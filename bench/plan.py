"""What a bench run is made of: its rows, their sizes, and what they share. No Django in here: the
entry point reads it before Django is set up."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.processes import simulator_start

# row -> (short name, module with run(bench) -> Result)
ROWS = {
    "1": ("placement", "bench.placement"),
    "2": ("http", "bench.api"),
    "3": ("email", "bench.emails"),
    "4": ("sweep", "bench.sweep"),
    "5": ("paypal", "bench.paypal_sweep"),
}


@dataclass(frozen=True)
class Sizes:
    placement_orders: int  # row 1, orders timed (after a warm-up of 50)
    http_seconds: float  # row 2, measured window of each phase
    http_warmup: float  # row 2, requests before the window, not counted
    emails: int  # row 3
    sweep_orders: int  # row 4, overdue orders per data set
    paypal_orders: int  # row 5


FULL = Sizes(
    placement_orders=3000,
    http_seconds=20,
    http_warmup=3,
    emails=5000,
    sweep_orders=100_000,
    paypal_orders=10_000,
)
QUICK = Sizes(
    placement_orders=400, http_seconds=5, http_warmup=1, emails=300, sweep_orders=10_000, paypal_orders=500
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Bench:
    """What the rows share: the sizes, the production stack (its processes and services) and what
    they found to check and to report."""

    sizes: Sizes
    stack: object  # tests.fixtures.stack.ProductionStack
    checks: list[Check] = field(default_factory=list)
    memory: dict[str, int | None] = field(default_factory=dict)  # what -> RSS in KiB

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))

    def simulator(self) -> str:
        """The PayPal simulator as deployed (``manage.py run_paypal_simulator``), started once."""
        return simulator_start(self.stack)
