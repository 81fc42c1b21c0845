"""The one module that talks to PayPal, through PayPal's official SDK (``paypal-server-sdk``).

It speaks in small dataclasses and our own exceptions (``payments.errors``), never in SDK objects:
every SDK error, connection error and timeout leaves this module as a ``PaymentError`` subclass that
carries PayPal's issue. It knows nothing of the database.

Replay safety: every POST that moves money or creates something carries a ``PayPal-Request-Id``
derived from the order's ``transaction_id``, so a retry (after a timeout, a lost answer, a second
click on the return URL) gets PayPal's first answer instead of a second PayPal order, capture or refund.

The SDK is pointed at ``settings.PAYPAL_API_BASE`` (PayPal live, sandbox, or the local simulator)
through a ``Configuration`` subclass. Clients (and their HTTP sessions) are kept per thread and per
settings; the OAuth token is shared by all of them until it expires.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import requests
import urllib3
from apimatic_core.exceptions.auth_validation_exception import AuthValidationException
from django.conf import settings
from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.api_exception import ApiException
from paypalserversdk.exceptions.error_exception import ErrorException
from paypalserversdk.exceptions.o_auth_provider_exception import OAuthProviderException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.amount_breakdown import AmountBreakdown
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.item import Item
from paypalserversdk.models.item_category import ItemCategory
from paypalserversdk.models.money import Money
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.payment_source import PaymentSource
from paypalserversdk.models.paypal_experience_user_action import PaypalExperienceUserAction
from paypalserversdk.models.paypal_wallet import PaypalWallet
from paypalserversdk.models.paypal_wallet_context_shipping_preference import (
    PaypalWalletContextShippingPreference,
)
from paypalserversdk.models.paypal_wallet_experience_context import PaypalWalletExperienceContext
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.models.refund_request import RefundRequest
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from payments.errors import (
    PaymentAlreadyCaptured,
    PaymentAlreadyRefunded,
    PaymentDeclined,
    PaymentError,
    PaymentGatewayError,
    PaymentNotApproved,
    PaymentProviderNotFound,
    PaymentRejected,
)

logger = logging.getLogger(__name__)

# PayPal's currencies without minor units: amounts are sent as whole numbers.
ZERO_DECIMAL_CURRENCIES = frozenset({"HUF", "JPY", "TWD"})
MAX_TEXT = 127  # PayPal's limit for item names and SKUs

WEBHOOK_HEADERS = {
    "auth_algo": "PAYPAL-AUTH-ALGO",
    "cert_url": "PAYPAL-CERT-URL",
    "transmission_id": "PAYPAL-TRANSMISSION-ID",
    "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
    "transmission_time": "PAYPAL-TRANSMISSION-TIME",
}

# What each PayPal issue name (``details[0].issue``, else the error's ``name``) means for the order.
#
# - Final (``error.final``): the same request would be refused again, so the order is settled at
#   once: the payer's funding was refused (``PaymentDeclined``), PayPal no longer knows the order
#   (``PaymentProviderNotFound``), and every 4xx issue name not listed here (``PaymentRejected``: a
#   request PayPal refuses for a reason we did not foresee is not going to pass on a second try).
# - Retryable: PayPal is failing, busy or not reachable (``PaymentGatewayError``: every 5xx, 401,
#   403, 408 and 429 whatever its issue, timeouts, connection errors and the names below), or the
#   payer has to act first (``PaymentNotApproved``). The order stays PENDING and is asked about
#   again; ``reserved_until + PAYPAL_SETTLE_GRACE_SECONDS`` bounds that, whatever the error.
# - ``ORDER_ALREADY_CAPTURED`` is no refusal: the order's captures tell the outcome.
ISSUE_ERRORS: dict[str, type[PaymentError]] = {
    **dict.fromkeys(
        (
            "INSTRUMENT_DECLINED",
            "TRANSACTION_REFUSED",
            "PAYER_CANNOT_PAY",
            "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
            "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
            "CARD_EXPIRED",
            "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
            "PAYER_ACCOUNT_RESTRICTED",
            "PAYEE_ACCOUNT_LOCKED_OR_CLOSED",
            "PAYEE_ACCOUNT_RESTRICTED",
            "PAYEE_BLOCKED_TRANSACTION",
            "TRANSACTION_BLOCKED_BY_PAYEE",
            "TRANSACTION_LIMIT_EXCEEDED",
            "TRANSACTION_RECEIVING_LIMIT_EXCEEDED",
            "COMPLIANCE_VIOLATION",
            "DECLINED_DUE_TO_RELATED_TXN",
            "DOMESTIC_TRANSACTION_REQUIRED",
        ),
        PaymentDeclined,
    ),
    **dict.fromkeys(("ORDER_NOT_APPROVED", "PAYER_ACTION_REQUIRED"), PaymentNotApproved),
    "ORDER_ALREADY_CAPTURED": PaymentAlreadyCaptured,
    "CAPTURE_FULLY_REFUNDED": PaymentAlreadyRefunded,
    **dict.fromkeys(("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "ORDER_EXPIRED"), PaymentProviderNotFound),
    **dict.fromkeys(
        (
            "INTERNAL_SERVER_ERROR",
            "SERVICE_UNAVAILABLE",
            "RATE_LIMIT_REACHED",
            "ORDER_COMPLETION_IN_PROGRESS",
            "PREVIOUS_REQUEST_IN_PROGRESS",
            "RESOURCE_CONFLICT",
        ),
        PaymentGatewayError,
    ),
}
RETRYABLE_STATUSES = frozenset({401, 403, 408, 429})


# --- What the gateway answers --------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseLine:
    name: str
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class PayPalCapture:
    id: str
    status: str  # COMPLETED, PENDING, DECLINED, FAILED, REFUNDED, PARTIALLY_REFUNDED
    amount: Decimal | None
    currency: str
    status_reason: str = ""

    @property
    def is_completed(self) -> bool:
        # A capture refunded later was completed first: the money moved.
        return self.status in {"COMPLETED", "REFUNDED", "PARTIALLY_REFUNDED"}

    @property
    def is_declined(self) -> bool:
        return self.status in {"DECLINED", "FAILED"}

    @property
    def is_fully_refunded(self) -> bool:
        return self.status == "REFUNDED"


@dataclass(frozen=True)
class PayPalOrder:
    id: str
    status: str  # CREATED, SAVED, APPROVED, VOIDED, COMPLETED, PAYER_ACTION_REQUIRED
    approval_url: str = ""
    amount: Decimal | None = None
    currency: str = ""
    captures: tuple[PayPalCapture, ...] = ()
    refunds: tuple[PayPalRefund, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def refunded_amount(self) -> Decimal:
        """What PayPal has given back to the payer so far (completed refunds of the captures)."""
        return sum(
            (refund.amount or Decimal("0") for refund in self.refunds if refund.status == "COMPLETED"),
            Decimal("0"),
        )

    @property
    def completed_capture(self) -> PayPalCapture | None:
        return next((capture for capture in self.captures if capture.is_completed), None)

    @property
    def pending_capture(self) -> PayPalCapture | None:
        return next((capture for capture in self.captures if capture.status == "PENDING"), None)

    @property
    def declined_capture(self) -> PayPalCapture | None:
        return next((capture for capture in self.captures if capture.is_declined), None)


@dataclass(frozen=True)
class PayPalRefund:
    id: str
    status: str  # COMPLETED, PENDING, CANCELLED, FAILED
    amount: Decimal | None = None
    currency: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)


# --- The SDK client --------------------------------------------------------------------------------


class ApiBaseConfiguration(Configuration):
    """The SDK's configuration, with every environment pointing at one base URL.

    The SDK knows only PayPal's two hosts; the simulator (and any proxy) needs another. Note that
    ``clone_with()`` and ``from_environment()`` build a plain ``Configuration``: don't use them here.
    """

    def __init__(self, *, api_base: str, **kwargs):
        self._api_base = api_base.rstrip("/")
        super().__init__(**kwargs)

    @property
    def environments(self):
        return {environment: {Server.DEFAULT: self._api_base} for environment in Environment}


_local = threading.local()
# OAuth tokens are shared by every thread's client (per settings): one token request per process and
# expiry, not one per thread. The SDK asks ``_shared_token`` through its ``o_auth_token_provider`` hook.
_tokens: dict[tuple, object] = {}
_tokens_lock = threading.Lock()


def _shared_token(key: tuple):
    def provide(last_token, auth_manager):
        with _tokens_lock:
            token = _tokens.get(key)
        if token is not None and not auth_manager.is_token_expired(token):
            return token
        token = auth_manager.fetch_token()  # raises on failure: our _call translates it
        with _tokens_lock:
            _tokens[key] = token
        return token

    return provide


def _settings_key() -> tuple:
    return (
        settings.PAYPAL_API_BASE,
        settings.PAYPAL_CLIENT_ID,
        settings.PAYPAL_CLIENT_SECRET,
        float(settings.PAYPAL_TIMEOUT_SECONDS),
    )


def _client() -> PaypalServersdkClient:
    key = _settings_key()
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    client = clients.get(key)
    if client is None:
        api_base, client_id, client_secret, timeout = key
        if not api_base or not client_id or not client_secret:
            raise PaymentGatewayError(
                "PayPal is not configured: set PAYPAL_API_BASE, PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET.",
                issue="NOT_CONFIGURED",
            )
        config = ApiBaseConfiguration(
            api_base=api_base,
            timeout=timeout,
            max_retries=0,  # our callers decide about retries; every POST is replay-safe anyway
            environment=Environment.PRODUCTION if settings.PAYPAL_MODE == "live" else Environment.SANDBOX,
            client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
                o_auth_client_id=client_id,
                o_auth_client_secret=client_secret,
                o_auth_token_provider=_shared_token(key),
            ),
        )
        client = clients[key] = PaypalServersdkClient(config=config)
    return client


def _forget_client() -> None:
    """Drop this thread's client and the shared token: the next call starts with a new token."""
    key = _settings_key()
    getattr(_local, "clients", {}).pop(key, None)
    with _tokens_lock:
        _tokens.pop(key, None)


def _parse(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"text": (text or "")[:500]}
    return value if isinstance(value, dict) else {"value": value}


def _error_from_response(status: int, body: dict, headers: Mapping | None = None) -> PaymentError:
    details = body.get("details") or []
    first = details[0] if details and isinstance(details[0], dict) else {}
    issue = first.get("issue") or body.get("name") or body.get("error") or f"HTTP_{status}"
    description = first.get("description") or body.get("message") or body.get("error_description") or ""
    debug_id = body.get("debug_id") or (headers or {}).get("Paypal-Debug-Id", "") or ""
    kwargs = {"issue": issue, "status_code": status, "debug_id": debug_id, "response": body}
    error_class = error_for_issue(issue, status)
    if error_class is PaymentGatewayError:
        message = (
            f"PayPal could not handle the request ({status} {issue}). Please try again in a few minutes."
        )
    elif error_class is PaymentProviderNotFound:
        message = f"PayPal does not know this payment ({issue})."
    else:
        message = description or None
    return error_class(message, **kwargs)


def error_for_issue(issue: str, status: int) -> type[PaymentError]:
    """The error class of a PayPal refusal: see ``ISSUE_ERRORS``."""
    if status >= 500 or status in RETRYABLE_STATUSES:
        return PaymentGatewayError
    if issue in ISSUE_ERRORS:
        return ISSUE_ERRORS[issue]
    return PaymentProviderNotFound if status == 404 else PaymentRejected


def _is_timeout(error: requests.RequestException) -> bool:
    # With the SDK's urllib3 Retry object, a read timeout reaches us as a ConnectionError wrapping
    # MaxRetryError(ReadTimeoutError), not as requests.Timeout.
    if isinstance(error, requests.Timeout):
        return True
    # (NewConnectionError, a refused connection, is a ConnectTimeoutError subclass for history's sake.)
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _call(operation: str, request: Callable[[PaypalServersdkClient], object]) -> dict:
    """Run one SDK call and answer its JSON body; every failure becomes a ``PaymentError``.

    A 401 with a kept token (revoked, or the simulator restarted) drops the client and tries once
    more with a new token: safe, because every POST carries its ``PayPal-Request-Id``.
    """
    for attempt in (1, 2):
        try:
            response = request(_client())
        except ErrorException as error:
            if error.response_code == 401 and attempt == 1:
                _forget_client()
                continue
            raise _error_from_response(
                error.response_code, _parse(error.response.text), error.response.headers
            ) from error
        except OAuthProviderException as error:
            _forget_client()
            body = _parse(error.response.text)
            raise PaymentGatewayError(
                "PayPal refused the shop's credentials (check PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET): "
                f"{body.get('error_description') or body.get('error') or error.response_code}.",
                issue="AUTHENTICATION_FAILURE",
                status_code=error.response_code,
                response=body,
            ) from error
        except AuthValidationException as error:
            # The SDK swallows the token endpoint's answer: bad credentials, or PayPal failing.
            _forget_client()
            raise PaymentGatewayError(
                "PayPal did not give the shop an access token (check PAYPAL_CLIENT_ID and "
                "PAYPAL_CLIENT_SECRET, or PayPal is failing).",
                issue="AUTHENTICATION_FAILURE",
            ) from error
        except ApiException as error:
            raise _error_from_response(
                error.response_code, _parse(error.response.text), error.response.headers
            ) from error
        except requests.RequestException as error:
            if _is_timeout(error):
                raise PaymentGatewayError(
                    f"PayPal did not answer within {settings.PAYPAL_TIMEOUT_SECONDS:g} seconds "
                    f"({operation}).",
                    issue="TIMEOUT",
                ) from error
            raise PaymentGatewayError(
                f"PayPal could not be reached ({operation}): {type(error).__name__}.",
                issue="CONNECTION_ERROR",
            ) from error
        return _parse(response.text)
    raise AssertionError("unreachable")  # pragma: no cover


# --- Amounts and answers -----------------------------------------------------------------------------


def format_amount(amount: Decimal, currency: str) -> str:
    exponent = Decimal("1") if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return str(Decimal(amount).quantize(exponent))


def _money(amount: Decimal, currency: str) -> Money:
    return Money(currency_code=currency, value=format_amount(amount, currency))


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


def _money_of(data: dict) -> dict:
    """The ``amount`` of a capture or refund, as our fields."""
    amount = data.get("amount") or {}
    return {"amount": _decimal(amount.get("value")), "currency": amount.get("currency_code", "")}


def _capture_from(data: dict) -> PayPalCapture:
    return PayPalCapture(
        id=data.get("id", ""),
        status=data.get("status", ""),
        status_reason=(data.get("status_details") or {}).get("reason", ""),
        **_money_of(data),
    )


def _link(links: Iterable[dict], *rels: str) -> str:
    by_rel = {link.get("rel"): link.get("href", "") for link in links or [] if isinstance(link, dict)}
    return next((by_rel[rel] for rel in rels if by_rel.get(rel)), "")


def order_from_json(data: dict) -> PayPalOrder:
    """A PayPal order (an API answer, or a webhook's ``checkout-order`` resource) as our dataclass."""
    units = data.get("purchase_units") or []
    amount = (units[0].get("amount") or {}) if units else {}
    captures = tuple(
        _capture_from(capture)
        for unit in units
        for capture in ((unit.get("payments") or {}).get("captures") or [])
    )
    refunds = tuple(
        refund_from_json(refund)
        for unit in units
        for refund in ((unit.get("payments") or {}).get("refunds") or [])
    )
    return PayPalOrder(
        id=data.get("id", ""),
        status=data.get("status", ""),
        # With payment_source.paypal.experience_context PayPal answers PAYER_ACTION_REQUIRED and a
        # "payer-action" link; with the older application_context, CREATED and an "approve" link.
        approval_url=_link(data.get("links"), "payer-action", "approve"),
        amount=_decimal(amount.get("value")),
        currency=amount.get("currency_code", ""),
        captures=captures,
        refunds=refunds,
        raw=data,
    )


def capture_from_json(data: dict) -> PayPalCapture:
    return _capture_from(data)


def refund_from_json(data: dict) -> PayPalRefund:
    return PayPalRefund(id=data.get("id", ""), status=data.get("status", ""), raw=data, **_money_of(data))


# --- The calls ---------------------------------------------------------------------------------------


def request_id(transaction_id, operation: str) -> str:
    """The ``PayPal-Request-Id`` of one operation on one payment: the same on every retry."""
    return f"{transaction_id}-{operation}"


def paypal_order_create(
    *,
    transaction_id,
    reference: str,
    currency: str,
    total: Decimal,
    lines: list[PurchaseLine],
    return_url: str,
    cancel_url: str,
    locale: str = "",
) -> PayPalOrder:
    """Create a PayPal order (intent CAPTURE) for exactly ``total``, itemised by ``lines``.

    ``total`` must equal the sum of the lines: both come from the server's own order, never from
    the shopper's request.
    """
    item_total = sum((line.unit_price * line.quantity for line in lines), Decimal("0"))
    if format_amount(item_total, currency) != format_amount(total, currency):
        raise ValueError(f"the lines add up to {item_total}, not to the order total {total}")
    items = [
        Item(
            name=line.name[:MAX_TEXT] or "Item",
            unit_amount=_money(line.unit_price, currency),
            quantity=str(line.quantity),
            category=ItemCategory.PHYSICAL_GOODS,
            **({"sku": line.sku[:MAX_TEXT]} if line.sku else {}),
        )
        for line in lines
    ]
    experience = PaypalWalletExperienceContext(
        shipping_preference=PaypalWalletContextShippingPreference.NO_SHIPPING,
        user_action=PaypalExperienceUserAction.PAY_NOW,
        return_url=return_url,
        cancel_url=cancel_url,
        **({"locale": locale} if locale else {}),
    )
    body = OrderRequest(
        intent=CheckoutPaymentIntent.CAPTURE,
        purchase_units=[
            PurchaseUnitRequest(
                reference_id=str(transaction_id),
                amount=AmountWithBreakdown(
                    currency_code=currency,
                    value=format_amount(total, currency),
                    breakdown=AmountBreakdown(item_total=_money(item_total, currency)),
                ),
                custom_id=reference,
                invoice_id=str(transaction_id),
                items=items,
            )
        ],
        payment_source=PaymentSource(paypal=PaypalWallet(experience_context=experience)),
    )
    data = _call(
        "create order",
        lambda client: client.orders.create_order(
            {"body": body, "paypal_request_id": request_id(transaction_id, "create")}
        ),
    )
    order = order_from_json(data)
    if not order.id:
        raise PaymentGatewayError(
            "PayPal answered without an order id.", issue="INVALID_RESPONSE", response=data
        )
    return order


def paypal_order_get(*, provider_order_id: str) -> PayPalOrder:
    return order_from_json(
        _call("get order", lambda client: client.orders.get_order({"id": provider_order_id}))
    )


def paypal_order_capture(*, provider_order_id: str, transaction_id) -> PayPalOrder:
    """Capture the approved PayPal order; a retry replays PayPal's first answer (one capture)."""
    data = _call(
        "capture order",
        lambda client: client.orders.capture_order(
            {"id": provider_order_id, "paypal_request_id": request_id(transaction_id, "capture")}
        ),
    )
    return order_from_json(data)


def paypal_capture_refund(*, capture_id: str, transaction_id, note: str = "") -> PayPalRefund:
    """Refund the whole capture; a retry replays PayPal's first answer (one refund)."""
    body = RefundRequest(invoice_id=str(transaction_id), **({"note_to_payer": note[:255]} if note else {}))
    data = _call(
        "refund capture",
        lambda client: client.payments.refund_captured_payment(
            {
                "capture_id": capture_id,
                "paypal_request_id": request_id(transaction_id, f"refund-{capture_id}"),
                "body": body,
            }
        ),
    )
    return refund_from_json(data)


class _HeaderCollector:
    """What the SDK's auth manager writes its ``Authorization`` header into."""

    def __init__(self):
        self.headers: dict[str, str] = {}

    def add_header(self, name, value):
        self.headers[name] = value


def paypal_webhook_verify(*, headers: Mapping[str, str], event: dict, webhook_id: str) -> bool:
    """Ask PayPal whether ``event`` was signed by PayPal for our ``webhook_id``.

    The SDK has no helper for ``POST /v1/notifications/verify-webhook-signature``: the call is made
    with ``requests`` and the SDK's OAuth token. A missing header is simply "not verified"; PayPal
    being unreachable raises ``PaymentGatewayError`` (the sender should retry later).
    """
    lowered = {str(name).lower(): value for name, value in headers.items()}
    values = {key: lowered.get(header.lower(), "") for key, header in WEBHOOK_HEADERS.items()}
    if not webhook_id or not all(values.values()):
        return False
    payload = {**values, "webhook_id": webhook_id, "webhook_event": event}

    def verify(client: PaypalServersdkClient):
        auth = client.oauth_2
        if not auth.is_valid():
            raise AuthValidationException(auth.error_message)
        collector = _HeaderCollector()
        auth.apply(collector)
        response = requests.post(
            f"{settings.PAYPAL_API_BASE.rstrip('/')}/v1/notifications/verify-webhook-signature",
            json=payload,
            headers={"Content-Type": "application/json", "Accept": "application/json", **collector.headers},
            timeout=float(settings.PAYPAL_TIMEOUT_SECONDS),
        )
        if response.status_code == 401:
            raise ErrorException("Unauthorized", _SdkLikeResponse(response))
        if response.status_code >= 400:
            raise ApiException(f"HTTP {response.status_code}", _SdkLikeResponse(response))
        return response

    try:
        data = _call("verify webhook signature", verify)
    except PaymentRejected as error:
        logger.warning("PayPal refused to verify a webhook: %s %s", error.issue, error.message)
        return False
    return data.get("verification_status") == "SUCCESS"


class _SdkLikeResponse:
    """A ``requests`` response dressed as the SDK's, so that one error translation serves both."""

    def __init__(self, response: requests.Response):
        self.status_code = response.status_code
        self.text = response.text
        self.headers = response.headers
