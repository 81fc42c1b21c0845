"""Liveness probes for containers (Dockerfile HEALTHCHECK, docker-compose.yml, Kubernetes exec probes).

    python -m shop.probe http [/health/live]            # web: 200 from http://127.0.0.1:$PORT/health/live
    python -m shop.probe heartbeat ROLE [--max-age 60]  # worker, beat, email-consumer (core/heartbeat.py)

Exit 0 when healthy, 1 otherwise, with one line saying why. Nothing here sets Django up: a probe
costs well under a second of one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

from core.heartbeat import ROLES, heartbeat_age, heartbeat_path


def probe_http(target: str, *, timeout: float) -> tuple[bool, str]:
    url = target if "://" in target else f"http://127.0.0.1:{os.environ.get('PORT', '8000')}{target}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) of our own
            return response.status == 200, f"{url}: {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"{url}: {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url}: {getattr(error, 'reason', error)}"


def probe_heartbeat(role: str, *, max_age: float) -> tuple[bool, str]:
    age = heartbeat_age(role)
    path = heartbeat_path(role)
    if age is None:
        return False, f"{role}: no heartbeat at {path}"
    return age <= max_age, f"{role}: last heartbeat {age:.1f} s ago at {path} (max {max_age:g} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.probe", description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    http = kinds.add_parser("http", help="GET a URL (or a path on 127.0.0.1:$PORT); healthy on 200")
    http.add_argument("target", nargs="?", default="/health/live")
    http.add_argument("--timeout", type=float, default=5.0)
    beat = kinds.add_parser("heartbeat", help="healthy while the role's heartbeat file is fresh")
    beat.add_argument("role", choices=ROLES)
    beat.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)

    if args.kind == "http":
        healthy, message = probe_http(args.target, timeout=args.timeout)
    else:
        healthy, message = probe_heartbeat(args.role, max_age=args.max_age)
    print(("healthy: " if healthy else "unhealthy: ") + message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
