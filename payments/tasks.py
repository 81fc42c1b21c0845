from celery import shared_task

from payments.expiry import payment_expire_overdue

RELEASE_EXPIRED_TASK = "payments.tasks.release_expired_reservations"


@shared_task(name=RELEASE_EXPIRED_TASK, ignore_result=True)
def release_expired_reservations() -> dict:
    """Every minute (django-celery-beat): release the stock of orders whose hold expired (asking
    PayPal first about those with a PayPal order), and check failed orders PayPal may hold money for."""
    sweep = payment_expire_overdue()
    return {"released": len(sweep.released), "settled_with_provider": len(sweep.settled_with_provider)}
