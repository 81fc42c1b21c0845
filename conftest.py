"""Shared fixtures. Each boundary has its own module under tests/fixtures/:
Kafka broker (kafka.py), PayPal simulator (paypal.py), SMTP server (smtp.py), API clients and users (core.py),
log records with their request id (logs.py).
"""

pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.kafka",
    "tests.fixtures.logs",
    "tests.fixtures.paypal",
    "tests.fixtures.smtp",
]
