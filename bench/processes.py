"""Waiting on the production processes the bench starts (``tests.fixtures.stack.ProductionStack``)."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import time


def wait_until(condition, *, timeout: float, message: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message}: not within {timeout} s")
        time.sleep(interval)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def http_status(port: int, path: str, host: str = "127.0.0.1") -> int | None:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def alive(stack, name: str) -> bool:
    process = stack.processes.get(name)
    if process is None or process.poll() is not None:
        raise RuntimeError(f"{name} is not running:\n{stack.log(name)[-3000:]}")
    return True


def simulator_start(stack) -> str:
    """``manage.py run_paypal_simulator`` with the production settings, once; its URL."""
    if "paypal" not in stack.processes:
        stack.start("paypal", "python manage.py run_paypal_simulator --no-webhooks")
        wait_until(
            lambda: alive(stack, "paypal") and port_answers(stack.simulator_port),
            timeout=60,
            message="the PayPal simulator to listen",
        )
    return stack.simulator_url


def web_start(stack, command: str) -> None:
    """gunicorn as the Procfile starts it; returns once ``/health/live`` answers 200."""
    stack.start("web", command)
    wait_until(
        lambda: alive(stack, "web") and http_status(stack.web_port, "/health/live") == 200,
        timeout=90,
        message="gunicorn to answer /health/live",
        interval=0.2,
    )


def wait_for_log(stack, name: str, pattern: str, *, timeout: float) -> re.Match:
    """The first match of ``pattern`` in the output of process ``name``."""
    return wait_until(
        lambda: alive(stack, name) and re.search(pattern, stack.log(name)),
        timeout=timeout,
        message=f"{name} to log {pattern!r}",
        interval=0.1,
    )
