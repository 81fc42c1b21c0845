"""The simulator's PayPal: the Orders v2 subset the shop uses, over an in-memory, thread-safe state.

Every public method returns an ``Answer`` (status, JSON body, headers) shaped like PayPal's: the
HTTP layer in ``server.py`` only parses requests and writes answers. Nothing here imports Django, so
the simulator runs as its own process (``manage.py run_paypal_simulator``) or in a test's thread.

What it does like PayPal (checked against the Orders v2 reference):

- create answers 201, and 200 with the first answer when the ``PayPal-Request-Id`` is replayed;
  with ``payment_source.paypal.experience_context`` the order is ``PAYER_ACTION_REQUIRED`` and its
  links carry ``payer-action``; ``approve`` is there too, for clients written against the contract;
- capture answers 201 with ``purchase_units[].payments.captures[]``; 422 ``ORDER_NOT_APPROVED``,
  ``ORDER_ALREADY_CAPTURED``, ``INSTRUMENT_DECLINED``; replay by ``PayPal-Request-Id``;
- errors have PayPal's body: ``{name, message, debug_id, details: [{issue, description}], links}``;
  OAuth errors have the OAuth body ``{error, error_description}``;
- only successful answers are kept for replay, so a retry after an error is processed afresh.

What it does differently: webhook signatures are an HMAC with the simulator's secret over
``transmission id|time|webhook id|crc32(body)`` (PayPal signs the same string with RSA); the verify
endpoint recomputes it over the compact JSON of ``webhook_event``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import string
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode, urlsplit, urlunsplit

ID_ALPHABET = string.ascii_uppercase + string.digits
ZERO_DECIMAL_CURRENCIES = {"HUF", "JPY", "TWD"}
AUTH_ALGO = "SHA256withRSA"
WEBHOOK_EVENT_TYPES = (
    "CHECKOUT.ORDER.APPROVED",
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.DENIED",
    "PAYMENT.CAPTURE.REFUNDED",
)
# PayPal's refusals of a capture (422 with this issue): nothing is captured, the order stays APPROVED.
CAPTURE_REFUSALS = (
    "INSTRUMENT_DECLINED",
    "TRANSACTION_REFUSED",
    "PAYER_CANNOT_PAY",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
    "COMPLIANCE_VIOLATION",
    "PAYER_ACTION_REQUIRED",
    "ORDER_COMPLETION_IN_PROGRESS",
    "DUPLICATE_INVOICE_ID",
)
# What the next capture of an order does: the default, a capture held for review, or a refusal.
CAPTURE_OUTCOMES = ("COMPLETED", "PENDING", *CAPTURE_REFUSALS)
# "hold" keeps the request waiting, unanswered, until the control API releases it.
FAILURE_MODES = ("status", "disconnect", "drop_response", "delay", "hold")
HOLD_SECONDS = 30.0  # the longest a held request waits for its release

ERROR_NAMES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: (
        "AUTHENTICATION_FAILURE",
        "Authentication failed due to invalid authentication credentials or a missing Authorization "
        "parameter.",
    ),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business validation.",
    ),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
}

ISSUE_DESCRIPTIONS = {
    "ORDER_NOT_APPROVED": (
        "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' "
        "url returned as part of the HATEOAS links within the Create Order call or provide a valid "
        "payment_source in the request."
    ),
    "ORDER_ALREADY_CAPTURED": (
        "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed."
    ),
    "INSTRUMENT_DECLINED": (
        "The instrument presented  was either declined by the processor or bank, or it can't be used for "
        "this payment."
    ),
    "INVALID_RESOURCE_ID": (
        "Specified resource ID does not exist. Please check the resource ID and try again."
    ),
    "MALFORMED_REQUEST_JSON": "The request JSON is not well formed.",
    "MISSING_REQUIRED_PARAMETER": "A required field / parameter is missing.",
    "INVALID_PARAMETER_VALUE": "The value of a field is invalid.",
    "INVALID_PARAMETER_SYNTAX": "The value of a field does not conform to the expected format.",
    "ITEM_TOTAL_MISMATCH": (
        "Should equal sum of (unit_amount * quantity) across all items for a given purchase_unit"
    ),
    "AMOUNT_MISMATCH": (
        "Should equal item_total + tax_total + shipping + handling + insurance - shipping_discount "
        "- discount."
    ),
    "CURRENCY_MISMATCH": "Currency code should be the same for all amounts in a purchase unit.",
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_AMOUNT_EXCEEDED": (
        "The refund amount must be less than or equal to the capture amount that has not yet been refunded."
    ),
    "REFUND_NOT_ALLOWED": "The capture is not completed, so it cannot be refunded.",
    "TRANSACTION_REFUSED": "The request was refused.",
    "PAYER_CANNOT_PAY": (
        "Combination of payer and payee settings mean that this buyer cannot pay this seller."
    ),
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED": ("You have exceeded the maximum number of payment attempts."),
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING": (
        "Transaction failed. Redirect the payer to select another funding source."
    ),
    "COMPLIANCE_VIOLATION": "Transaction cannot be processed due to a possible compliance violation.",
    "PAYER_ACTION_REQUIRED": (
        "Transaction cannot complete successfully, instruct the buyer to return to the previous page."
    ),
    "ORDER_COMPLETION_IN_PROGRESS": (
        "The order is being completed by an earlier request. Please try again later."
    ),
    "DUPLICATE_INVOICE_ID": "Duplicate Invoice ID detected. To avoid a potential duplicate transaction.",
    "CAPTURE_NOT_PENDING": "Only a capture held for review can be settled.",
}


def new_id(length: int = 17) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_json(value) -> bytes:
    """The bytes the simulator sends as a webhook body, and recomputes when asked to verify one."""
    return json.dumps(value, separators=(",", ":")).encode()


def format_money(amount: Decimal, currency: str) -> str:
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(amount.quantize(Decimal("1")))
    return str(amount.quantize(Decimal("0.01")))


def with_query(url: str, **params) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@dataclass
class Answer:
    status: int
    body: dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)


class InvalidRequest(Exception):
    """A request body that breaks the schema: answered 400 INVALID_REQUEST with this detail."""

    def __init__(self, issue: str, field_path: str, value=None, location: str = "body"):
        super().__init__(issue)
        self.detail = {"field": field_path, "location": location, "issue": issue}
        if value is not None:
            self.detail["value"] = str(value)
        self.detail["description"] = ISSUE_DESCRIPTIONS.get(issue, issue)


def paypal_error(status: int, issue: str | None = None, *, detail: dict | None = None, links=None) -> Answer:
    name, message = ERROR_NAMES.get(status, ERROR_NAMES[500])
    body: dict = {"name": name, "message": message, "debug_id": new_id(13).lower()}
    if detail is None and issue is not None:
        detail = {"issue": issue, "description": ISSUE_DESCRIPTIONS.get(issue, issue)}
    if detail is not None:
        body["details"] = [detail]
        issue = detail["issue"]
    body["links"] = links or (
        [
            {
                "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue}",
                "rel": "information_link",
                "method": "GET",
            }
        ]
        if issue
        else []
    )
    return Answer(status, body)


def _money(value, path: str) -> tuple[Decimal, str]:
    if not isinstance(value, dict):
        raise InvalidRequest("MISSING_REQUIRED_PARAMETER", path)
    currency = value.get("currency_code")
    amount = value.get("value")
    if not isinstance(currency, str) or len(currency) != 3:
        raise InvalidRequest(
            "MISSING_REQUIRED_PARAMETER" if not currency else "INVALID_PARAMETER_VALUE",
            f"{path}/currency_code",
            currency,
        )
    if not isinstance(amount, str):
        raise InvalidRequest("MISSING_REQUIRED_PARAMETER", f"{path}/value")
    try:
        parsed = Decimal(amount)
    except InvalidOperation as error:
        raise InvalidRequest("INVALID_PARAMETER_SYNTAX", f"{path}/value", amount) from error
    if not parsed.is_finite() or parsed < 0 or -parsed.as_tuple().exponent > 2:
        raise InvalidRequest("INVALID_PARAMETER_SYNTAX", f"{path}/value", amount)
    return parsed, currency


@dataclass
class SimOrder:
    id: str
    intent: str
    status: str
    purchase_units: list[dict]
    return_url: str
    cancel_url: str
    uses_payment_source: bool
    create_time: str
    update_time: str
    payer: dict | None = None
    next_capture: str = "COMPLETED"
    next_capture_amount: dict | None = None  # another amount for the next capture than the order's
    capture_ids: list[str] = field(default_factory=list)
    capture_calls: int = 0  # capture requests processed (replays not counted)
    expired: bool = False  # PayPal let the order expire before it was captured: it is gone


@dataclass
class SimCapture:
    order_id: str
    unit_index: int
    data: dict
    refund_ids: list[str] = field(default_factory=list)
    refunded: Decimal = Decimal("0")


@dataclass
class FailurePlan:
    remaining: int
    mode: str = "status"
    status: int = 503
    match: str = ""
    seconds: float = 0.0
    release: threading.Event = field(default_factory=threading.Event, repr=False)

    def describe(self) -> dict:
        return {
            "remaining": self.remaining,
            "mode": self.mode,
            "status": self.status,
            "match": self.match,
            "seconds": self.seconds,
        }


class SimulatorState:
    """All of the simulator's PayPal, behind one lock."""

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:8001",
        public_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        webhook_id: str = "simulator-webhook",
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
    ):
        self.lock = threading.RLock()
        self.base_url = base_url.rstrip("/")
        # Where the payer's browser reaches the approve page, when not at base_url (a simulator that
        # listens on 0.0.0.0 in a container, published on the host's localhost).
        self.public_url = (public_url or base_url).rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.webhook_secret = (webhook_secret or secrets.token_hex(32)).encode()
        self.webhook_url = webhook_url
        # Tokens survive ``reset()``: a client keeps its token across tests, as it would against PayPal.
        self.tokens: set[str] = set()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            for plan in getattr(self, "holding", []):
                plan.release.set()
            self.holding: list[FailurePlan] = []
            self.orders: dict[str, SimOrder] = {}
            self.captures: dict[str, SimCapture] = {}
            self.refunds: dict[str, dict] = {}
            self.replays: dict[tuple[str, str, str], Answer] = {}
            self.failures: list[FailurePlan] = []
            self.webhooks: dict[str, bytes] = {}
            self.requests: list[dict] = []

    # --- OAuth ----------------------------------------------------------------------------------

    def token(self, *, authorization: str, form: dict[str, str]) -> Answer:
        if form.get("grant_type") != "client_credentials":
            return Answer(
                400,
                {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL or unsupported"},
            )
        client_id, client_secret = self._basic_credentials(authorization)
        known = self.client_id is None or (
            hmac.compare_digest(client_id or "", self.client_id)
            and hmac.compare_digest(client_secret or "", self.client_secret or "")
        )
        if not client_id or not known:
            return Answer(
                401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
            )
        access_token = "A21AA" + secrets.token_urlsafe(48)
        with self.lock:
            self.tokens.add(access_token)
        return Answer(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment "
                "https://uri.paypal.com/services/payments/refund",
                "access_token": access_token,
                "token_type": "Bearer",
                "app_id": "APP-SIMULATOR",
                "expires_in": 32400,
                "nonce": f"{now_iso()}{secrets.token_urlsafe(16)}",
            },
        )

    @staticmethod
    def _basic_credentials(authorization: str) -> tuple[str | None, str | None]:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, client_secret = decoded.partition(":")
        return client_id, client_secret

    def authenticate(self, authorization: str) -> Answer | None:
        """None when ``authorization`` carries a token this simulator issued; the 401 answer otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        with self.lock:
            if scheme.lower() == "bearer" and token.strip() in self.tokens:
                return None
        if not token:
            return paypal_error(401)
        return Answer(
            401, {"error": "invalid_token", "error_description": "Token signature verification failed"}
        )

    # --- Fault injection ------------------------------------------------------------------------

    def add_failure(
        self,
        *,
        count: int = 1,
        mode: str = "status",
        status: int = 503,
        match: str = "",
        seconds: float = 0.0,
    ) -> FailurePlan:
        if mode not in FAILURE_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAILURE_MODES)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        plan = FailurePlan(
            remaining=int(count), mode=mode, status=int(status), match=match, seconds=float(seconds)
        )
        with self.lock:
            self.failures.append(plan)
        return plan

    def take_failure(self, path: str) -> FailurePlan | None:
        """The failure planned for this API call, if any (each plan covers its next ``count`` calls)."""
        with self.lock:
            for plan in self.failures:
                if plan.match in path:
                    plan.remaining -= 1
                    if plan.remaining <= 0:
                        self.failures.remove(plan)
                    return plan
        return None

    def hold(self, plan: FailurePlan) -> None:
        """Keep a request waiting until ``release_held()`` (at most ``plan.seconds``, or ``HOLD_SECONDS``)."""
        with self.lock:
            self.holding.append(plan)
        try:
            plan.release.wait(plan.seconds or HOLD_SECONDS)
        finally:
            with self.lock:
                if plan in self.holding:
                    self.holding.remove(plan)

    def held(self) -> int:
        """How many requests are being held right now."""
        with self.lock:
            return len(self.holding)

    def release_held(self) -> int:
        """Let every held request go on (to be processed and answered); how many there were."""
        with self.lock:
            for plan in self.holding:
                plan.release.set()
            return len(self.holding)

    def log_request(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)

    # --- Orders ---------------------------------------------------------------------------------

    def order_create(self, *, body, request_id: str | None, prefer: str = "") -> Answer:
        # One lock around replay check, work and remembering: two racing requests with one
        # PayPal-Request-Id get one outcome.
        with self.lock:
            return self._order_create(body=body, request_id=request_id, prefer=prefer)

    def _order_create(self, *, body, request_id: str | None, prefer: str = "") -> Answer:
        replay = self._replay("create", "", request_id)
        if replay is not None:
            return replay
        if not isinstance(body, dict):
            return paypal_error(400, detail=InvalidRequest("MALFORMED_REQUEST_JSON", "/").detail)
        try:
            order = self._order_from_request(body)
        except InvalidRequest as error:
            status = 422 if error.detail["issue"] in {"ITEM_TOTAL_MISMATCH", "AMOUNT_MISMATCH"} else 400
            return paypal_error(status, detail=error.detail)
        with self.lock:
            self.orders[order.id] = order
            representation = self._order_json(order)
        answer_body = representation if "return=representation" in prefer else self._minimal(representation)
        return self._remember("create", "", request_id, Answer(201, answer_body))

    def _order_from_request(self, body: dict) -> SimOrder:
        intent = body.get("intent")
        if intent is None:
            raise InvalidRequest("MISSING_REQUIRED_PARAMETER", "/intent")
        if intent not in {"CAPTURE", "AUTHORIZE"}:
            raise InvalidRequest("INVALID_PARAMETER_VALUE", "/intent", intent)
        units = body.get("purchase_units")
        if not isinstance(units, list) or not units:
            raise InvalidRequest("MISSING_REQUIRED_PARAMETER", "/purchase_units")
        purchase_units = [self._purchase_unit(unit, index) for index, unit in enumerate(units)]

        payment_source = body.get("payment_source") or {}
        paypal = payment_source.get("paypal") if isinstance(payment_source, dict) else None
        experience = (paypal or {}).get("experience_context") or {}
        application_context = body.get("application_context") or {}
        now = now_iso()
        return SimOrder(
            id=new_id(),
            intent=intent,
            status="PAYER_ACTION_REQUIRED" if paypal is not None else "CREATED",
            purchase_units=purchase_units,
            return_url=experience.get("return_url") or application_context.get("return_url") or "",
            cancel_url=experience.get("cancel_url") or application_context.get("cancel_url") or "",
            uses_payment_source=paypal is not None,
            create_time=now,
            update_time=now,
        )

    def _purchase_unit(self, unit, index: int) -> dict:
        path = f"/purchase_units/@reference_id=='{index}'"
        if not isinstance(unit, dict):
            raise InvalidRequest("INVALID_PARAMETER_SYNTAX", path)
        amount = unit.get("amount")
        total, currency = _money(amount, f"{path}/amount")
        breakdown = amount.get("breakdown") or {}
        items = unit.get("items") or []
        if items:
            if "item_total" not in breakdown:
                raise InvalidRequest("MISSING_REQUIRED_PARAMETER", f"{path}/amount/breakdown/item_total")
            items_sum = Decimal("0")
            for position, item in enumerate(items):
                if not isinstance(item, dict) or not item.get("name"):
                    raise InvalidRequest("MISSING_REQUIRED_PARAMETER", f"{path}/items/{position}/name")
                unit_amount, item_currency = _money(
                    item.get("unit_amount"), f"{path}/items/{position}/unit_amount"
                )
                if item_currency != currency:
                    raise InvalidRequest(
                        "CURRENCY_MISMATCH", f"{path}/items/{position}/unit_amount/currency_code"
                    )
                quantity = item.get("quantity")
                if not isinstance(quantity, str) or not quantity.isdigit() or int(quantity) < 1:
                    raise InvalidRequest(
                        "INVALID_PARAMETER_SYNTAX", f"{path}/items/{position}/quantity", quantity
                    )
                items_sum += unit_amount * int(quantity)
        parts = {}
        for key in (
            "item_total",
            "tax_total",
            "shipping",
            "handling",
            "insurance",
            "shipping_discount",
            "discount",
        ):
            if key in breakdown:
                value, part_currency = _money(breakdown[key], f"{path}/amount/breakdown/{key}")
                if part_currency != currency:
                    raise InvalidRequest("CURRENCY_MISMATCH", f"{path}/amount/breakdown/{key}/currency_code")
                parts[key] = value
        if items and parts["item_total"] != items_sum:
            raise InvalidRequest(
                "ITEM_TOTAL_MISMATCH", f"{path}/amount/breakdown/item_total", parts["item_total"]
            )
        if parts:
            expected = (
                sum(
                    (
                        parts.get(key, Decimal("0"))
                        for key in ("item_total", "tax_total", "shipping", "handling", "insurance")
                    ),
                    Decimal("0"),
                )
                - parts.get("shipping_discount", Decimal("0"))
                - parts.get("discount", Decimal("0"))
            )
            if expected != total:
                raise InvalidRequest("AMOUNT_MISMATCH", f"{path}/amount/value", amount["value"])
        normalized = {
            "reference_id": unit.get("reference_id") or "default",
            "amount": amount,
            "payee": {"email_address": "merchant@shop.example", "merchant_id": "SIMMERCHANT01"},
        }
        for key in ("description", "custom_id", "invoice_id", "soft_descriptor", "items"):
            if unit.get(key):
                normalized[key] = unit[key]
        return normalized

    def order_get(self, order_id: str) -> Answer:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or order.expired:
                return self._order_not_found(order_id)
            return Answer(200, self._order_json(order))

    def order_capture(self, order_id: str, *, request_id: str | None) -> Answer:
        # One lock around replay check, work and remembering: two racing requests with one
        # PayPal-Request-Id get one outcome.
        with self.lock:
            return self._order_capture(order_id, request_id=request_id)

    def _order_capture(self, order_id: str, *, request_id: str | None) -> Answer:
        replay = self._replay("capture", order_id, request_id)
        if replay is not None:
            return replay
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or order.expired:
                return self._order_not_found(order_id)
            if order.status == "COMPLETED":
                return paypal_error(422, "ORDER_ALREADY_CAPTURED")
            if order.status != "APPROVED":
                return paypal_error(422, "ORDER_NOT_APPROVED")
            order.capture_calls += 1
            outcome, order.next_capture = order.next_capture, "COMPLETED"
            amount, order.next_capture_amount = order.next_capture_amount, None
            if outcome in CAPTURE_REFUSALS:
                # The order stays APPROVED: PayPal lets the payer pick another funding source.
                return paypal_error(
                    422,
                    outcome,
                    links=[
                        {"href": self._approve_url(order.id), "rel": "redirect", "method": "GET"},
                        {
                            "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{outcome}",
                            "rel": "information_link",
                            "method": "GET",
                        },
                    ],
                )
            self._capture_locked(order, status=outcome, amount=amount)
            answer = Answer(201, self._order_json(order))
        return self._remember("capture", order_id, request_id, answer)

    def _capture_locked(self, order: SimOrder, *, status: str, amount: dict | None = None) -> None:
        now = now_iso()
        override = amount
        for unit_index, unit in enumerate(order.purchase_units):
            capture_id = new_id()
            amount = (
                dict(override)
                if override
                else {
                    "currency_code": unit["amount"]["currency_code"],
                    "value": unit["amount"]["value"],
                }
            )
            data = {
                "id": capture_id,
                "status": status,
                "amount": amount,
                "final_capture": True,
                "seller_protection": {
                    "status": "ELIGIBLE",
                    "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
                },
                "seller_receivable_breakdown": self._breakdown(amount, "gross_amount", "net_amount"),
                "create_time": now,
                "update_time": now,
            }
            if status == "PENDING":
                data["status_details"] = {"reason": "PENDING_REVIEW"}
            for key in ("invoice_id", "custom_id"):
                if key in unit:
                    data[key] = unit[key]
            data["links"] = [
                {
                    "href": f"{self.base_url}/v2/payments/captures/{capture_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"{self.base_url}/v2/payments/captures/{capture_id}/refund",
                    "rel": "refund",
                    "method": "POST",
                },
                {"href": f"{self.base_url}/v2/checkout/orders/{order.id}", "rel": "up", "method": "GET"},
            ]
            self.captures[capture_id] = SimCapture(order_id=order.id, unit_index=unit_index, data=data)
            order.capture_ids.append(capture_id)
        order.status = "COMPLETED"
        order.update_time = now

    @staticmethod
    def _breakdown(amount: dict, gross_key: str, net_key: str) -> dict:
        currency = amount["currency_code"]
        gross = Decimal(amount["value"])
        fee = (
            (gross * Decimal("0.0349") + Decimal("0.49")).quantize(Decimal("0.01")) if gross else Decimal("0")
        )
        fee = min(fee, gross)
        return {
            gross_key: dict(amount),
            "paypal_fee": {"currency_code": currency, "value": format_money(fee, currency)},
            net_key: {"currency_code": currency, "value": format_money(gross - fee, currency)},
        }

    def _order_not_found(self, order_id: str) -> Answer:
        return paypal_error(
            404,
            detail={
                "field": "order_id",
                "value": order_id,
                "location": "path",
                "issue": "INVALID_RESOURCE_ID",
                "description": ISSUE_DESCRIPTIONS["INVALID_RESOURCE_ID"],
            },
        )

    # --- Refunds --------------------------------------------------------------------------------

    def capture_get(self, capture_id: str) -> Answer:
        with self.lock:
            capture = self.captures.get(capture_id)
            if capture is None:
                return self._capture_not_found(capture_id)
            return Answer(200, self._capture_json(capture))

    def capture_refund(self, capture_id: str, *, body, request_id: str | None) -> Answer:
        # One lock around replay check, work and remembering: two racing requests with one
        # PayPal-Request-Id get one outcome.
        with self.lock:
            return self._capture_refund(capture_id, body=body, request_id=request_id)

    def _capture_refund(self, capture_id: str, *, body, request_id: str | None) -> Answer:
        replay = self._replay("refund", capture_id, request_id)
        if replay is not None:
            return replay
        body = body or {}
        if not isinstance(body, dict):
            return paypal_error(400, detail=InvalidRequest("MALFORMED_REQUEST_JSON", "/").detail)
        with self.lock:
            capture = self.captures.get(capture_id)
            if capture is None:
                return self._capture_not_found(capture_id)
            data = capture.data
            currency = data["amount"]["currency_code"]
            captured = Decimal(data["amount"]["value"])
            remaining = captured - capture.refunded
            if data["status"] == "REFUNDED" or remaining <= 0:
                return paypal_error(422, "CAPTURE_FULLY_REFUNDED")
            if data["status"] not in {"COMPLETED", "PARTIALLY_REFUNDED"}:
                return paypal_error(422, "REFUND_NOT_ALLOWED")
            if body.get("amount") is not None:
                try:
                    amount, refund_currency = _money(body["amount"], "/amount")
                except InvalidRequest as error:
                    return paypal_error(400, detail=error.detail)
                if refund_currency != currency:
                    return paypal_error(422, "CURRENCY_MISMATCH")
            else:
                amount = remaining
            if amount > remaining or amount <= 0:
                return paypal_error(422, "REFUND_AMOUNT_EXCEEDED")
            refund_id = new_id()
            now = now_iso()
            money = {"currency_code": currency, "value": format_money(amount, currency)}
            refund = {
                "id": refund_id,
                "amount": money,
                "status": "COMPLETED",
                "seller_payable_breakdown": self._breakdown(money, "gross_amount", "net_amount"),
                "create_time": now,
                "update_time": now,
                "links": [
                    {
                        "href": f"{self.base_url}/v2/payments/refunds/{refund_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"{self.base_url}/v2/payments/captures/{capture_id}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
            }
            for key in ("invoice_id", "note_to_payer", "custom_id"):
                if body.get(key):
                    refund[key] = body[key]
            capture.refunded += amount
            capture.refund_ids.append(refund_id)
            data["status"] = "REFUNDED" if capture.refunded >= captured else "PARTIALLY_REFUNDED"
            data["update_time"] = now
            self.refunds[refund_id] = {"capture_id": capture_id, "data": refund}
            answer = Answer(201, refund)
        return self._remember("refund", capture_id, request_id, answer)

    def _capture_not_found(self, capture_id: str) -> Answer:
        return paypal_error(
            404,
            detail={
                "field": "capture_id",
                "value": capture_id,
                "location": "path",
                "issue": "INVALID_RESOURCE_ID",
                "description": ISSUE_DESCRIPTIONS["INVALID_RESOURCE_ID"],
            },
        )

    # --- Idempotency ----------------------------------------------------------------------------

    def _replay(self, operation: str, resource_id: str, request_id: str | None) -> Answer | None:
        if not request_id:
            return None
        with self.lock:
            first = self.replays.get((operation, resource_id, request_id))
        if first is None:
            return None
        return Answer(200, json.loads(json.dumps(first.body)), {"X-Simulator-Replay": "true"})

    def _remember(self, operation: str, resource_id: str, request_id: str | None, answer: Answer) -> Answer:
        if request_id and 200 <= answer.status < 300:
            with self.lock:
                # Two racing first requests: the first one stored wins, as PayPal answers both with one order.
                kept = self.replays.setdefault((operation, resource_id, request_id), answer)
            if kept is not answer:
                return Answer(200, json.loads(json.dumps(kept.body)), {"X-Simulator-Replay": "true"})
        return answer

    # --- Representations ------------------------------------------------------------------------

    def _approve_url(self, order_id: str) -> str:
        return f"{self.public_url}/checkoutnow?token={order_id}"

    def _capture_json(self, capture: SimCapture) -> dict:
        return json.loads(json.dumps(capture.data))

    def _order_json(self, order: SimOrder) -> dict:
        units = []
        for unit_index, unit in enumerate(order.purchase_units):
            copy = json.loads(json.dumps(unit))
            unit_captures = [
                self.captures[capture_id]
                for capture_id in order.capture_ids
                if self.captures[capture_id].unit_index == unit_index
            ]
            if unit_captures:
                captures = [self._capture_json(capture) for capture in unit_captures]
                refunds = [
                    self.refunds[refund_id]["data"]
                    for capture in unit_captures
                    for refund_id in capture.refund_ids
                ]
                copy["payments"] = {"captures": captures}
                if refunds:
                    copy["payments"]["refunds"] = json.loads(json.dumps(refunds))
            units.append(copy)
        body = {
            "id": order.id,
            "intent": order.intent,
            "status": order.status,
            "purchase_units": units,
            "create_time": order.create_time,
            "update_time": order.update_time,
        }
        if order.uses_payment_source:
            paypal = {}
            if order.payer is not None:
                paypal = {
                    "email_address": order.payer["email_address"],
                    "account_id": order.payer["payer_id"],
                    "account_status": "VERIFIED",
                    "name": order.payer["name"],
                    "address": order.payer["address"],
                }
            body["payment_source"] = {"paypal": paypal}
        if order.payer is not None:
            body["payer"] = order.payer
        links = [{"href": f"{self.base_url}/v2/checkout/orders/{order.id}", "rel": "self", "method": "GET"}]
        if order.status in {"CREATED", "PAYER_ACTION_REQUIRED"}:
            if order.uses_payment_source:
                links.append({"href": self._approve_url(order.id), "rel": "payer-action", "method": "GET"})
            links.append({"href": self._approve_url(order.id), "rel": "approve", "method": "GET"})
        if order.status in {"CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"}:
            links.append(
                {"href": f"{self.base_url}/v2/checkout/orders/{order.id}", "rel": "update", "method": "PATCH"}
            )
        if order.status == "APPROVED":
            links.append(
                {
                    "href": f"{self.base_url}/v2/checkout/orders/{order.id}/capture",
                    "rel": "capture",
                    "method": "POST",
                }
            )
        body["links"] = links
        return body

    @staticmethod
    def _minimal(representation: dict) -> dict:
        keys = ("id", "status", "payment_source", "links")
        return {key: representation[key] for key in keys if key in representation}

    # --- The payer ------------------------------------------------------------------------------

    def order_for_payer(self, order_id: str) -> dict | None:
        """What the approve page shows: the order as PayPal would show it to the payer."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or order.expired:
                return None
            return {
                "id": order.id,
                "status": order.status,
                "purchase_units": json.loads(json.dumps(order.purchase_units)),
                "return_url": order.return_url,
                "cancel_url": order.cancel_url,
            }

    def approve(self, order_id: str) -> tuple[SimOrder | None, bool]:
        """The payer approves: (order, whether it changed). Approving twice is harmless."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                return None, False
            if order.expired or order.status not in {"CREATED", "PAYER_ACTION_REQUIRED"}:
                return order, False
            payer_id = new_id(13)
            order.payer = {
                "name": {"given_name": "Sim", "surname": "Buyer"},
                "email_address": f"buyer-{payer_id.lower()}@example.com",
                "payer_id": payer_id,
                "address": {"country_code": "US"},
            }
            order.status = "APPROVED"
            order.update_time = now_iso()
            return order, True

    def return_redirect(self, order: SimOrder) -> str:
        payer_id = (order.payer or {}).get("payer_id", "")
        return with_query(order.return_url, token=order.id, PayerID=payer_id) if order.return_url else ""

    def cancel_redirect(self, order: SimOrder) -> str:
        return with_query(order.cancel_url, token=order.id) if order.cancel_url else ""

    # --- Control (tests and demos) --------------------------------------------------------------

    def set_next_capture(self, order_id: str, outcome: str, amount: dict | None = None) -> SimOrder | None:
        """What the next capture of the order does; ``amount`` (``{"value", "currency_code"}``) makes
        it capture another amount or currency than the order's, as a faulty integration could."""
        if outcome not in CAPTURE_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(CAPTURE_OUTCOMES)}")
        if amount is not None:
            try:
                _money(amount, "/amount")
            except InvalidRequest as error:
                raise ValueError(f"amount is not PayPal money: {error.detail}") from error
        with self.lock:
            order = self.orders.get(order_id)
            if order is not None:
                order.next_capture = outcome
                order.next_capture_amount = dict(amount) if amount else None
            return order

    def expire_order(self, order_id: str) -> SimOrder | None:
        """PayPal lets an order that was never captured expire: from now on it answers 404 for it.
        ``ValueError`` for a captured order (PayPal keeps those)."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is not None:
                if order.capture_ids:
                    raise ValueError(f"order {order_id} was captured: it does not expire")
                order.expired = True
            return order

    def merchant_refund(self, capture_id: str, value: str | None = None) -> Answer:
        """The merchant refunds (part of) a capture from PayPal's dashboard, not through the API."""
        with self.lock:
            capture = self.captures.get(capture_id)
            currency = capture.data["amount"]["currency_code"] if capture else "USD"
        body = {"amount": {"currency_code": currency, "value": value}} if value is not None else {}
        return self.capture_refund(capture_id, body=body, request_id=None)

    def capture_now(self, order_id: str) -> Answer:
        """Capture as the merchant would, without an API call: a capture whose answer the shop lost."""
        return self.order_capture(order_id, request_id=None)

    def settle_capture(self, capture_id: str, status: str) -> Answer:
        """A capture held for review is released (COMPLETED) or refused (DECLINED)."""
        if status not in {"COMPLETED", "DECLINED"}:
            raise ValueError("status must be COMPLETED or DECLINED")
        with self.lock:
            capture = self.captures.get(capture_id)
            if capture is None:
                return self._capture_not_found(capture_id)
            if capture.data["status"] != "PENDING":
                return paypal_error(422, "CAPTURE_NOT_PENDING")
            capture.data["status"] = status
            capture.data.pop("status_details", None)
            capture.data["update_time"] = now_iso()
            return Answer(200, self._capture_json(capture))

    def snapshot(self, order_id: str) -> dict | None:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                return None
            return {
                "order": self._order_json(order),
                "next_capture": order.next_capture,
                "next_capture_amount": order.next_capture_amount,
                "expired": order.expired,
                "capture_calls": order.capture_calls,
                "capture_ids": list(order.capture_ids),
                "return_url": order.return_url,
                "cancel_url": order.cancel_url,
            }

    # --- Webhooks -------------------------------------------------------------------------------

    def webhook_event(self, order_id: str, event_type: str) -> dict:
        """A webhook event about the order's current state. ``LookupError`` when there is nothing to
        tell (unknown order, no capture yet, a capture in another state, no refund)."""
        if event_type not in WEBHOOK_EVENT_TYPES:
            raise ValueError(f"event_type must be one of {', '.join(WEBHOOK_EVENT_TYPES)}")
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or order.expired:
                raise LookupError(f"no order {order_id}")
            if event_type == "CHECKOUT.ORDER.APPROVED":
                if order.status != "APPROVED":
                    raise LookupError(f"order {order_id} is {order.status}, not APPROVED")
                resource_type, resource = "checkout-order", self._order_json(order)
                summary = "An order has been approved by buyer"
            elif event_type == "PAYMENT.CAPTURE.REFUNDED":
                refund_ids = [rid for cid in order.capture_ids for rid in self.captures[cid].refund_ids]
                if not refund_ids:
                    raise LookupError(f"order {order_id} has no refund")
                refund = self.refunds[refund_ids[-1]]
                resource_type, resource = "refund", json.loads(json.dumps(refund["data"]))
                resource["supplementary_data"] = {
                    "related_ids": {"order_id": order.id, "capture_id": refund["capture_id"]}
                }
                amount = resource["amount"]
                summary = f"A {amount['value']} {amount['currency_code']} capture payment was refunded"
            else:
                wanted = "COMPLETED" if event_type == "PAYMENT.CAPTURE.COMPLETED" else "DECLINED"
                if not order.capture_ids:
                    raise LookupError(f"order {order_id} has no capture")
                capture = self.captures[order.capture_ids[-1]]
                if capture.data["status"] not in (
                    {wanted, "REFUNDED", "PARTIALLY_REFUNDED"} if wanted == "COMPLETED" else {wanted}
                ):
                    raise LookupError(f"the capture of order {order_id} is {capture.data['status']}")
                resource_type, resource = "capture", self._capture_json(capture)
                resource["status"] = wanted
                resource["supplementary_data"] = {"related_ids": {"order_id": order.id}}
                amount = resource["amount"]
                summary = (
                    f"Payment completed for {amount['value']} {amount['currency_code']}"
                    if wanted == "COMPLETED"
                    else f"A {amount['value']} {amount['currency_code']} capture payment was denied"
                )
        event_id = f"WH-{new_id()}-{new_id()}"
        return {
            "id": event_id,
            "event_version": "1.0",
            "create_time": now_iso(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": resource,
            "links": [
                {
                    "href": f"{self.base_url}/v1/notifications/webhooks-events/{event_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"{self.base_url}/v1/notifications/webhooks-events/{event_id}/resend",
                    "rel": "resend",
                    "method": "POST",
                },
            ],
        }

    def webhook_signature(
        self, *, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
    ) -> str:
        message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()
        return base64.b64encode(hmac.new(self.webhook_secret, message, hashlib.sha256).digest()).decode()

    def webhook_sign(self, event: dict) -> tuple[bytes, dict[str, str]]:
        """The body and the headers PayPal would send for ``event`` (a new transmission each time)."""
        body = canonical_json(event)
        transmission_id = str(uuid.uuid4())
        transmission_time = now_iso()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PayPal/AUHD-214.0-58843723",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": self.webhook_signature(
                transmission_id=transmission_id,
                transmission_time=transmission_time,
                webhook_id=self.webhook_id,
                body=body,
            ),
            "PAYPAL-AUTH-ALGO": AUTH_ALGO,
            "PAYPAL-CERT-URL": f"{self.base_url}/v1/notifications/certs/CERT-SIMULATOR",
        }
        with self.lock:
            self.webhooks[event["id"]] = body
        return body, headers

    def webhook_body(self, event_id: str) -> bytes | None:
        with self.lock:
            return self.webhooks.get(event_id)

    def verify_webhook_signature(self, body) -> Answer:
        required = (
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
            "webhook_event",
        )
        if not isinstance(body, dict):
            return paypal_error(400, detail=InvalidRequest("MALFORMED_REQUEST_JSON", "/").detail)
        for key in required:
            if not body.get(key):
                return Answer(
                    400,
                    {
                        "name": "VALIDATION_ERROR",
                        "message": "Invalid request - see details",
                        "debug_id": new_id(13).lower(),
                        "details": [
                            {"field": key, "location": "body", "issue": "MISSING_REQUIRED_PARAMETER"}
                        ],
                    },
                )
        expected = self.webhook_signature(
            transmission_id=str(body["transmission_id"]),
            transmission_time=str(body["transmission_time"]),
            webhook_id=str(body["webhook_id"]),
            body=canonical_json(body["webhook_event"]),
        )
        verified = (
            body["auth_algo"] == AUTH_ALGO
            and str(body["cert_url"]).startswith(f"{self.base_url}/v1/notifications/certs/")
            and hmac.compare_digest(expected, str(body["transmission_sig"]))
        )
        return Answer(200, {"verification_status": "SUCCESS" if verified else "FAILURE"})
