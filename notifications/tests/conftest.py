import pytest

from notifications import kafka_client


@pytest.fixture(autouse=True)
def _fresh_kafka_producer():
    """Each test starts without the process's cached producer, and leaves none behind talking to a
    broker that the test (or the session) stopped."""
    kafka_client.producer_discard()
    yield
    kafka_client.producer_discard()
