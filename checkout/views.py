"""The shopper's order pages: list, detail with live status, and cancelling a pending order.

Only the shopper's own orders are reachable; anyone else's answers 404, exactly like a missing one.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.errors import ShopError
from orders.errors import OrderNotFound, OrderNotPending
from orders.models import Order, OrderStatus
from orders.reasons import reason_text
from orders.selectors import order_get_for_user, order_list_for_user
from orders.services import order_cancel as cancel_order
from payments.models import PaymentStatus

# How often a pending order's page refreshes itself (the no-JavaScript fallback, and the JS poll).
REFRESH_SECONDS = 5
ORDERS_PAGE_SIZE = 20


def _own_order(user, pk) -> Order:
    """One of the user's own orders; anybody else's is a 404, exactly like a missing one."""
    try:
        return order_get_for_user(user=user, order_id=pk)
    except OrderNotFound as error:
        raise Http404(error.message) from error


def _seconds_left(order: Order) -> int:
    if order.status != OrderStatus.PENDING:
        return 0
    return max(0, int((order.reserved_until - timezone.now()).total_seconds()))


def _next_step(order: Order) -> str:
    """What the shopper can do now, in one sentence."""
    payment = getattr(order, "payment", None)
    if order.status == OrderStatus.PENDING and _seconds_left(order) <= 0:
        return _("The time to pay is up. The order will be cancelled in a moment.")
    if order.status == OrderStatus.PENDING:
        return _(
            "Your items are held for you. Complete the payment at PayPal before the time runs out, "
            "or cancel the order."
        )
    if payment is not None and payment.status == PaymentStatus.REFUNDED:
        return _("The payment was refunded to your PayPal account. You can place a new order at any time.")
    if order.status == OrderStatus.SUCCESS:
        return _("Thank you! Your payment was received and we are preparing your order.")
    return reason_text(order.failure_reason).next_page


@login_required
def order_list(request):
    page_obj = Paginator(order_list_for_user(user=request.user), ORDERS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "orders/order_list.html", {"page_obj": page_obj})


@never_cache
@login_required
def order_detail(request, pk):
    order = _own_order(request.user, pk)
    payment = getattr(order, "payment", None)
    context = {
        "order": order,
        "lines": list(order.lines.all()),
        "payment": payment,
        "seconds_left": _seconds_left(order),
        "time_left": "{}:{:02d}".format(*divmod(_seconds_left(order), 60)),
        "next_step": _next_step(order),
        "refresh_seconds": REFRESH_SECONDS,
        "is_pending": order.status == OrderStatus.PENDING,
    }
    return render(request, "orders/order_detail.html", context)


@never_cache
@login_required
@require_GET
def order_status(request, pk):
    """The live status of one order, for the order page's polling script."""
    order = _own_order(request.user, pk)
    return JsonResponse(
        {
            "id": order.pk,
            "status": order.status,
            "status_display": order.get_status_display(),
            "failure_reason": order.failure_reason or None,
            "is_final": order.is_final,
            "reserved_until": order.reserved_until.isoformat(),
            "seconds_left": _seconds_left(order),
        }
    )


@login_required
@require_POST
def order_cancel(request, pk):
    order = _own_order(request.user, pk)
    try:
        cancel_order(user=request.user, order_id=order.pk)
    except ShopError as error:
        if isinstance(error, OrderNotPending):
            messages.info(request, _("This order is no longer pending, so it cannot be cancelled."))
        else:
            messages.error(request, _("The order could not be cancelled. Please try again."))
    else:
        messages.success(request, _("Your order was cancelled. Nothing was charged."))
    return redirect(order.get_absolute_url())
