"""requirements.lock (``make lock``), what the image installs, against requirements.txt, what it is made from.

The lock must be exactly the dependency closure of requirements.txt: every pin of requirements.txt at
its version, nothing the closure lacks (a requirement removed but still locked), nothing missing, and a
hash for every entry (``pip install --require-hashes``). The closure is read from the metadata of the
packages installed in this environment, which ``make install`` built from the same requirements.txt.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def pins(path: Path) -> dict[str, str]:
    """name -> version of the ``name==version`` lines of a requirements file."""
    found = {}
    for line in requirement_lines(path):
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {line} is not pinned"
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def lock_entries() -> dict[str, dict]:
    """name -> {version, marker, hashes} of requirements.lock."""
    entries: dict[str, dict] = {}
    current = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := LOCK_ENTRY.match(line):
            current = entries[canonicalize_name(match["name"])] = {
                "version": match["version"],
                "marker": Marker(match["marker"]) if match["marker"] else None,
                "hashes": [],
            }
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            current["hashes"].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return entries


def closure(roots: list[Requirement]) -> set[str]:
    """The distributions ``roots`` need on this interpreter, with their extras, from installed metadata."""
    extras_seen: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in extras_seen and extras <= extras_seen[name]:
            continue
        extras_seen[name] = extras_seen.get(name, set()) | extras
        for line in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(line)
            wanted = extras_seen[name] or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in wanted):
                todo.append(dependency)
    return set(extras_seen)


def test_every_pin_of_requirements_txt_is_locked_at_its_version():
    lock = lock_entries()
    mismatched = {
        name: (version, lock.get(name, {}).get("version"))
        for name, version in pins(ROOT / "requirements.txt").items()
        if lock.get(name, {}).get("version") != version
    }
    assert mismatched == {}, "run `make lock`"


def test_the_lock_is_the_closure_of_requirements_txt():
    roots = [Requirement(line) for line in requirement_lines(ROOT / "requirements.txt")]
    needed = closure(roots)
    applicable = {
        name
        for name, entry in lock_entries().items()
        if entry["marker"] is None or entry["marker"].evaluate()
    }
    assert sorted(needed - applicable) == [], "missing from requirements.lock: run `make lock`"
    assert sorted(applicable - needed) == [], "locked but no longer required: run `make lock`"


def test_every_locked_package_has_hashes():
    lock = lock_entries()
    assert len(lock) > len(pins(ROOT / "requirements.txt"))
    assert [name for name, entry in lock.items() if not entry["hashes"]] == []
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for entry in lock.values() for digest in entry["hashes"])


def test_the_tests_run_the_versions_the_image_installs():
    """A package pinned for development that the image also installs is pinned at the image's version."""
    lock = lock_entries()
    dev = pins(ROOT / "requirements-dev.txt")
    assert {
        name: (version, lock[name]["version"])
        for name, version in dev.items()
        if name in lock and lock[name]["version"] != version
    } == {}
    for name, entry in lock.items():
        if entry["marker"] is None or entry["marker"].evaluate():
            assert importlib.metadata.version(name) == entry["version"], name


def test_the_lock_has_the_client_of_the_celery_broker_compose_configures():
    """The worker and beat of the image must be able to speak to the broker production uses: kombu's
    extra named after the broker URL's scheme (redis://... -> kombu[redis]) is locked."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    scheme = urlsplit(compose["services"]["worker"]["environment"]["CELERY_BROKER_URL"]).scheme
    extra = [
        Requirement(line)
        for line in importlib.metadata.requires("kombu")
        if Requirement(line).marker is not None
        and Requirement(line).marker.evaluate({"extra": scheme})
        and not Requirement(line).marker.evaluate({"extra": ""})
    ]
    assert extra, f"kombu has no extra for {scheme}://"
    lock = lock_entries()
    assert [
        str(requirement) for requirement in extra if canonicalize_name(requirement.name) not in lock
    ] == []
    for requirement in extra:
        assert requirement.specifier.contains(lock[canonicalize_name(requirement.name)]["version"])
