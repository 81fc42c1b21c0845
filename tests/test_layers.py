"""The layers of the house hold (import-linter, as `make test` runs it), and a change that breaks them
is caught: the generic notifications importing orders, or a cycle between the modules of one app."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "shop", "checkout", "payments", "orders", "inventory", "notifications"]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def house(tmp_path) -> Path:
    """A copy of the project's packages and import-linter's contracts, to change at will."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.mo")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_notifications_importing_an_order_breaks_the_layers(house):
    outbox = house / "notifications" / "outbox.py"
    outbox.write_text(outbox.read_text() + "\nfrom orders.models import Order  # noqa: E402, F401\n")

    result = lint_imports(house)

    assert result.returncode != 0
    assert "notifications is not allowed to import orders" in result.stdout


def test_a_cycle_between_two_modules_of_one_app_breaks_the_contracts(house):
    lock_objects = house / "orders" / "lock_objects.py"  # orders.services imports it
    assert "from orders.lock_objects import" in (house / "orders" / "services.py").read_text()
    lock_objects.write_text(lock_objects.read_text() + "\nfrom orders import services  # noqa: E402, F401\n")

    result = lint_imports(house)

    assert result.returncode != 0
    assert "no cycles between the modules of one app BROKEN" in result.stdout
