"""Placeholder until the outbox lands (issue 6): the checkout calls this inside its transaction."""


def outbox_record_order_outcome(*, order) -> None:
    """Record the final outcome of ``order`` for the email relay, in the caller's transaction."""
