from celery import shared_task

from checkout.audit import stock_audit_record, stock_audit_run

AUDIT_STOCK_TASK = "checkout.tasks.audit_stock"


@shared_task(name=AUDIT_STOCK_TASK, ignore_result=True)
def audit_stock() -> int:
    """Every hour (django-celery-beat): check the invariants, log each drift as an error, keep the
    result for staff. It never repairs anything."""
    return stock_audit_record(drifts=stock_audit_run()).drift_count
