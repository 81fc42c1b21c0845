"""``manage.py email_dlq``: read the dead-letter topic and replay chosen messages, against the bundled
Kafka broker and a real SMTP server."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from notifications.models import DeliveryStatus, EmailDelivery
from notifications.tests.factories import final_order
from notifications.tests.helpers import produce_raw, publish_all, record_outcomes

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def consume(count: int) -> str:
    return run("run_email_consumer", "--max-messages", str(count), "--idle-timeout", "15")


def test_a_poisoned_then_fixed_message_is_listed_then_replayed_into_exactly_one_email(
    email_pipeline, smtp_server
):
    order = final_order()
    smtp_server.refusals[order.user.email] = "550 5.1.1 No such mailbox"  # the poison: refused for good
    (event,) = record_outcomes([order])
    publish_all([event])
    produce_raw([("garbage", b"{not json")])
    assert "2 dead-lettered" in consume(2)
    assert EmailDelivery.objects.get(event_id=event.event_id).status == DeliveryStatus.FAILED

    listing = run("email_dlq", "list")
    assert "2 dead letters" in listing
    assert f"event={event.event_id} order={order.pk}" in listing
    assert "No such mailbox" in listing, listing
    assert "error=invalid_message" in listing

    del smtp_server.refusals[order.user.email]  # fixed
    replay = run("email_dlq", "replay", "--event-id", str(event.event_id))
    assert f"replayed {event.event_id} order={order.pk}" in replay
    assert "1 replayed (1 given-up deliveries reopened)" in replay
    assert "1 sent" in consume(1)
    assert smtp_server.event_counts() == {str(event.event_id): 1}

    # Replaying everything again sends nothing twice: the event is a duplicate, the garbage dies again.
    assert "2 replayed" in run("email_dlq", "replay", "--all")
    output = consume(2)
    assert "1 duplicates" in output and "1 dead-lettered" in output
    assert smtp_server.event_counts() == {str(event.event_id): 1}
    assert len(smtp_server.messages) == 1
    assert EmailDelivery.objects.get(event_id=event.event_id).status == DeliveryStatus.SENT


def test_replay_needs_a_choice_and_says_what_it_did_not_find(email_pipeline):
    with pytest.raises(CommandError, match="--event-id ID"):
        run("email_dlq", "replay")
    with pytest.raises(CommandError, match="nothing replayed"):
        run("email_dlq", "replay", "--event-id", "00000000-0000-0000-0000-000000000000")
    assert "0 dead letters" in run("email_dlq", "list")
