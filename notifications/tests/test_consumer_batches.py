"""The consumer's batches and its kept SMTP connection, end to end (the bundled Kafka broker, the
aiosmtpd sink, PostgreSQL): what a batch commits when one of its messages must wait, and how many
connections the mail server sees."""

import pytest

from notifications.models import DeliveryStatus, EmailDelivery
from notifications.tests.factories import final_order
from notifications.tests.helpers import (
    ConsumerThread,
    committed_offsets,
    event_bytes,
    produce_raw,
    record_outcomes,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def unpublished_outcomes(settings, count: int):
    """``count`` outcome events in the outbox, not published by the relay: the test puts them on the
    topic itself, where it wants them."""
    settings.OUTBOX_PUBLISH_ON_COMMIT = False
    return record_outcomes([final_order() for _ in range(count)])


def sessions_of(smtp_server) -> list:
    """The client address (one per SMTP connection) of each email the sink accepts from now on."""
    peers = []
    handle_data = smtp_server.handle_DATA

    async def counting_handle_data(server, session, envelope):
        peers.append(session.peer)
        return await handle_data(server, session, envelope)

    smtp_server.handle_DATA = counting_handle_data  # each new SMTP session looks its hooks up
    return peers


def test_a_message_that_must_wait_mid_batch_commits_those_before_it_and_comes_again(
    email_pipeline, smtp_server
):
    email_pipeline.EMAIL_RETRY_BACKOFF_SECONDS = 5.0  # long enough to look at the commit meanwhile
    email_pipeline.EMAIL_RETRY_BACKOFF_MAX_SECONDS = 5.0
    first, second, third = events = unpublished_outcomes(email_pipeline, 3)
    # One key: one partition, offsets 0, 1, 2, fetched in one batch.
    produce_raw([(first.key, event_bytes(event)) for event in events])
    busy, refused = second.payload["user"]["email"], []
    handle_rcpt = smtp_server.handle_RCPT

    async def busy_once(server, session, envelope, address, rcpt_options):
        if address == busy and not refused:
            refused.append(address)
            return "451 4.3.0 Mailbox busy, try again later"
        return await handle_rcpt(server, session, envelope, address, rcpt_options)

    smtp_server.handle_RCPT = busy_once
    consumer = ConsumerThread().start()
    try:
        # The first email went, the second waits for its backoff: only the first is committed.
        (sent,) = smtp_server.wait_for(1)
        assert sent["X-Shop-Event-Id"] == str(first.event_id)
        wait_until(lambda: list(committed_offsets().values()) == [1], message="the first committed")
        assert consumer.stats.retries == 1
        assert len(smtp_server.messages) == 1  # the third waits behind the second

        smtp_server.wait_for(3)
        wait_until(lambda: sum(committed_offsets().values()) == 3, message="all three committed")
    finally:
        consumer.stop()

    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    assert [message["X-Shop-Event-Id"] for message in smtp_server.messages] == [
        str(event.event_id) for event in (first, second, third)
    ]
    assert (consumer.stats.sent, consumer.stats.duplicates, consumer.stats.retries) == (3, 0, 1)
    waited = EmailDelivery.objects.get(event_id=second.event_id)
    assert (waited.status, waited.attempts, waited.last_error) == (DeliveryStatus.SENT, 2, "")


def test_one_smtp_connection_serves_a_batch_and_is_opened_again_after_the_server_dropped_it(
    email_pipeline, smtp_server
):
    peers = sessions_of(smtp_server)
    events = unpublished_outcomes(email_pipeline, 7)
    produce_raw([(event.key, event_bytes(event)) for event in events[:5]])
    consumer = ConsumerThread().start()
    try:
        smtp_server.wait_for(5)
        assert len(set(peers)) == 1  # five emails, one connection

        smtp_server.restart()  # the server drops the kept connection
        produce_raw([(event.key, event_bytes(event)) for event in events[5:]])
        smtp_server.wait_for(7)
        wait_until(lambda: sum(committed_offsets().values()) == 7, message="all seven committed")
    finally:
        consumer.stop()

    assert len(set(peers)) == 2  # one new connection after the drop, then kept again
    assert smtp_server.event_counts() == {str(event.event_id): 1 for event in events}
    assert (consumer.stats.sent, consumer.stats.retries) == (7, 0)  # reopened in place, no backoff
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SENT, 1)}


def test_a_batch_that_runs_out_of_time_commits_what_it_handled_and_fetches_the_rest_again(
    email_pipeline, smtp_server
):
    """A slow mail server must not keep a batch past the poll interval (the group would take the
    partition away and the batch would be redelivered): past ``batch_seconds`` the records left are
    fetched again. With no time at all, each batch handles one message."""
    events = unpublished_outcomes(email_pipeline, 4)
    produce_raw([(events[0].key, event_bytes(event)) for event in events])  # one partition, in order
    consumer = ConsumerThread(batch_seconds=0)
    commits = []
    commit = consumer.consumer._commit

    def recording_commit(kafka_consumer, offsets):
        commits.append(sorted(meta.offset for meta in offsets.values()))
        return commit(kafka_consumer, offsets)

    consumer.consumer._commit = recording_commit
    consumer.start()
    try:
        smtp_server.wait_for(4)
        wait_until(lambda: sum(committed_offsets().values()) == 4, message="all four committed")
    finally:
        consumer.stop()

    assert [offsets for offsets in commits if offsets] == [[1], [2], [3], [4]]
    assert [message["X-Shop-Event-Id"] for message in smtp_server.messages] == [
        str(event.event_id) for event in events
    ]
    assert (consumer.stats.sent, consumer.stats.duplicates, consumer.stats.retries) == (4, 0, 0)
