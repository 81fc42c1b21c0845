"""PayPal's way back into the shop: the return and cancel URLs (the shopper's browser) and the webhook.

The views are thin: each finds the shopper's own order for the PayPal token and calls one service.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core.errors import InvalidJSON
from core.parsers import has_control_characters
from orders.models import FailureReason, Order, OrderStatus
from payments.errors import PaymentError, PaymentGatewayError, PaymentNotApproved, WebhookRejected
from payments.models import Payment, PaymentStatus
from payments.services import payment_cancel, payment_capture
from payments.webhooks import payment_handle_webhook

logger = logging.getLogger(__name__)


def _own_order_for_token(request) -> Order:
    """The signed-in shopper's order paid through this PayPal order; anyone else's is a 404."""
    token = request.GET.get("token", "")
    if has_control_characters(token):  # no PayPal order id has one, and NUL cannot even be queried
        raise Http404("No such order.")
    token = token.strip()
    if not token:
        raise Http404("No PayPal order was given.")
    payment = (
        Payment.objects.select_related("order")
        .filter(provider_order_id=token, order__user=request.user)
        .only("id", "order")
        .first()
    )
    if payment is None:
        raise Http404("No such order.")
    return payment.order


def _tell_outcome(request, order: Order) -> None:
    payment = getattr(order, "payment", None)
    if order.status == OrderStatus.SUCCESS:
        messages.success(request, _("Thank you! Your payment was received and your order is confirmed."))
    elif order.status == OrderStatus.PENDING:
        messages.info(
            request,
            _("PayPal is still processing your payment. This page updates as soon as it is done."),
        )
    elif order.failure_reason == FailureReason.AMOUNT_MISMATCH:
        messages.error(
            request,
            _(
                "PayPal charged an amount that differs from your order's total, so the order was cancelled "
                "and the whole payment goes back to your PayPal account."
            ),
        )
    elif payment is not None and payment.status == PaymentStatus.REFUNDED:
        messages.warning(
            request,
            _(
                "Your order could not be completed in time, so the payment was refunded to your "
                "PayPal account."
            ),
        )
    elif order.failure_reason == FailureReason.PAYMENT_DECLINED:
        messages.error(
            request, _("PayPal declined the payment. Nothing was charged and the items went back on sale.")
        )
    elif order.failure_reason == FailureReason.PAYMENT_CANCELLED:
        messages.info(
            request,
            _("You cancelled the payment at PayPal. Nothing was charged and the items went back on sale."),
        )
    else:
        messages.warning(
            request,
            _("This order can no longer be paid: %(reason)s Nothing was charged.")
            % {"reason": order.get_failure_reason_display()},
        )


@never_cache
@login_required
@require_GET
def paypal_return(request):
    """The shopper approved at PayPal and comes back: capture, then show the order."""
    order = _own_order_for_token(request)
    try:
        order = payment_capture(order_id=order.pk)
    except PaymentGatewayError:
        messages.warning(
            request,
            _(
                "PayPal could not be reached to confirm your payment. Your items stay reserved and the "
                "payment will be confirmed as soon as PayPal answers; this page shows when it is done."
            ),
        )
    except PaymentNotApproved:
        messages.info(request, _("The payment was not approved at PayPal yet. Please approve it, or cancel."))
    except PaymentError as error:
        logger.warning("return from PayPal for order %s: %s", order.pk, error.message)
        messages.error(request, _("The payment could not be completed. Nothing was charged."))
    else:
        _tell_outcome(request, order)
    return redirect(order.get_absolute_url())


@never_cache
@login_required
@require_GET
def paypal_cancel(request):
    """The shopper cancelled at PayPal: the order fails (payment_cancelled) and its items go back on sale."""
    order = _own_order_for_token(request)
    order = payment_cancel(order_id=order.pk)
    _tell_outcome(request, order)
    return redirect(order.get_absolute_url())


@csrf_exempt
@require_POST
def paypal_webhook(request):
    """PayPal's webhook: 200 once handled (or a duplicate), 400 when it is not JSON (``invalid_json``)
    or cannot be verified (``webhook_rejected``), 413 over the body size limit (``shop.error_views``),
    503 when PayPal cannot be reached to verify or act (PayPal delivers it again later)."""
    try:
        outcome = payment_handle_webhook(headers=request.headers, body=request.body)
    except InvalidJSON as error:
        logger.warning("PayPal webhook rejected: %s", error.message)
        return JsonResponse(error.as_dict(), status=400)
    except WebhookRejected as error:
        logger.warning("PayPal webhook rejected: %s", error.message)
        return JsonResponse(error.as_dict(), status=400)
    except PaymentGatewayError as error:
        return JsonResponse(error.as_dict(), status=503)
    return JsonResponse({"status": outcome.value})
