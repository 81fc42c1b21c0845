"""Errors of the notifications app, each with a stable ``code``."""

from core.errors import ShopError


class NotificationError(ShopError):
    code = "notification_error"


class DeliveryNotFound(NotificationError):
    code = "delivery_not_found"
    http_status = 404
    default_message = "No such email delivery."


class EventNotFound(NotificationError):
    code = "event_not_found"
    http_status = 404
    default_message = "No such outbox event."


# --- Messages the email consumer cannot handle however often it tries (dead-lettered at once) -----


class PoisonMessage(NotificationError):
    code = "poison_message"
    default_message = "The message cannot be handled."


class InvalidMessage(PoisonMessage):
    code = "invalid_message"
    default_message = "The message is not a valid order outcome event."


class UnknownEventType(PoisonMessage):
    code = "unknown_event_type"
    default_message = "The message has an event type this consumer does not know."


class UnknownOrder(PoisonMessage):
    code = "unknown_order"
    default_message = "The message names an order that does not exist."


# --- Sending ---------------------------------------------------------------------------------------


class EmailNotSent(NotificationError):
    """This try failed but a later one may succeed: the consumer tries the message again later."""

    code = "email_not_sent"
    default_message = "The email could not be sent this time."


class EmailUndeliverable(NotificationError):
    """The mail server refused the email for good, or too many times: it is dead-lettered."""

    code = "email_undeliverable"
    default_message = "The email was refused by the mail server."
