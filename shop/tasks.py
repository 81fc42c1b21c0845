import smtplib

from celery import shared_task
from django.core.mail import EmailMultiAlternatives

SEND_ACCOUNT_EMAIL_TASK = "shop.tasks.send_account_email"


@shared_task(
    name=SEND_ACCOUNT_EMAIL_TASK,
    ignore_result=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    max_retries=8,
)
def send_account_email(*, subject: str, body: str, html: str | None, to: str) -> None:
    """Send an account email (password reset) rendered by the request, off the request: the shopper
    never waits on the mail server, and an unreachable one is tried again with backoff."""
    message = EmailMultiAlternatives(subject=subject, body=body, to=[to])
    if html:
        message.attach_alternative(html, "text/html")
    message.send()
