import pytest

from notifications import kafka_client


@pytest.fixture(autouse=True)
def _fresh_kafka_producer():
    """Each test starts without the process's cached producer, and leaves none behind talking to a
    broker that the test (or the session) stopped."""
    kafka_client.producer_discard()
    yield
    kafka_client.producer_discard()


@pytest.fixture
def email_pipeline(kafka_settings, smtp_settings):
    """Kafka (this test's own topics and group) and a real SMTP server, with short retry backoffs."""
    kafka_settings.EMAIL_RETRY_BACKOFF_SECONDS = 0.1
    kafka_settings.EMAIL_RETRY_BACKOFF_MAX_SECONDS = 0.5
    return kafka_settings
