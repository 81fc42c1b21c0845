"""The simulator's HTTP face: PayPal's API routes, the payer's approve page and a control API.

Routes (PayPal's):
    POST /v1/oauth2/token                              client credentials -> bearer token
    POST /v2/checkout/orders                           create (201; 200 on a PayPal-Request-Id replay)
    GET  /v2/checkout/orders/{id}                      show
    POST /v2/checkout/orders/{id}/capture              capture (201; 422 with PayPal's issues; replay)
    GET  /v2/payments/captures/{id}                    show a capture
    POST /v2/payments/captures/{id}/refund             refund (201; replay)
    POST /v1/notifications/verify-webhook-signature    {"verification_status": "SUCCESS" | "FAILURE"}
    GET  /checkoutnow?token={id}                       the payer's page: Approve / Cancel (no JavaScript)
    POST /checkoutnow?token={id}                       the buttons: 303 to the return or cancel URL

Control API (JSON in, JSON out; for tests and demos; never counted by ``/_simulator/fail``):
    POST /_simulator/reset                             forget every order, plan and log
    GET  /_simulator/orders/{id}                       the order, its capture calls and next capture outcome
    POST /_simulator/orders/{id}/approve               the payer approves, as the Approve button does
    POST /_simulator/orders/{id}/decline-next-capture  the next capture answers 422 INSTRUMENT_DECLINED
    POST /_simulator/orders/{id}/next-capture          {"outcome": "COMPLETED" | "PENDING" | a refusal
                                                       (state.CAPTURE_REFUSALS: 422 with that issue),
                                                       "amount": {"value", "currency_code"} optional:
                                                       capture another amount than the order's}
    POST /_simulator/orders/{id}/capture               capture now, as if the shop's capture answer was lost
    POST /_simulator/orders/{id}/expire                an order never captured expires: 404 from now on
    POST /_simulator/captures/{id}/settle              {"status": "COMPLETED" | "DECLINED"}: a PENDING
                                                       capture is released or refused
    POST /_simulator/captures/{id}/refund              {"value": "1.00" optional}: the merchant refunds
                                                       (part of) the capture from PayPal's dashboard
    POST /_simulator/orders/{id}/webhook               {"event_type": ..., "url": optional} -> signed event;
                                                       delivered (synchronously) when url is given
    POST /_simulator/webhooks/{event_id}/resend        {"url": ...}: the same event again, newly signed
    POST /_simulator/fail                              {"count": N, "mode": "status" | "disconnect" |
                                                       "drop_response" | "delay" | "hold", "status": 503,
                                                       "match": "/capture", "seconds": 0}
    GET  /_simulator/held                              {"held": N}: requests kept waiting by "hold"
    POST /_simulator/release                           let the held requests go on (processed, answered)
    GET  /_simulator/requests                          the PayPal API calls received, oldest first
    POST /_simulator/config                            {"webhook_url": url or null}: send events by itself

Nothing here imports Django.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from payments.simulator.state import (
    CAPTURE_OUTCOMES,
    WEBHOOK_EVENT_TYPES,
    Answer,
    SimulatorState,
    paypal_error,
)

logger = logging.getLogger("payments.simulator")

ORDER_PATH = re.compile(r"^/v2/checkout/orders/(?P<id>[A-Za-z0-9-]{1,36})$")
CAPTURE_ORDER_PATH = re.compile(r"^/v2/checkout/orders/(?P<id>[A-Za-z0-9-]{1,36})/capture$")
CAPTURE_PATH = re.compile(r"^/v2/payments/captures/(?P<id>[A-Za-z0-9-]{1,36})$")
REFUND_PATH = re.compile(r"^/v2/payments/captures/(?P<id>[A-Za-z0-9-]{1,36})/refund$")
CONTROL_ORDER_PATH = re.compile(r"^/_simulator/orders/(?P<id>[A-Za-z0-9-]{1,36})(?P<action>/[a-z-]+)?$")
CONTROL_SETTLE_PATH = re.compile(r"^/_simulator/captures/(?P<id>[A-Za-z0-9-]{1,36})/settle$")
CONTROL_REFUND_PATH = re.compile(r"^/_simulator/captures/(?P<id>[A-Za-z0-9-]{1,36})/refund$")
CONTROL_RESEND_PATH = re.compile(r"^/_simulator/webhooks/(?P<id>[A-Za-z0-9-]{1,80})/resend$")
WEBHOOK_TIMEOUT_SECONDS = 10


def deliver_webhook(url: str, body: bytes, headers: dict[str, str]) -> dict:
    """POST one signed event to ``url``; what the receiver answered (or why nothing was answered)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            return {"status": response.status, "body": response.read().decode(errors="replace")}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read().decode(errors="replace")}
    except (urllib.error.URLError, OSError) as error:
        return {"status": None, "error": str(error)}


class SimulatorRequestHandler(BaseHTTPRequestHandler):
    server_version = "PayPalSimulator/1.0"
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY on each accepted socket (socketserver's switch): nothing the simulator writes waits
    # for the client's ACK of what it wrote before.
    disable_nagle_algorithm = True
    server: SimulatorHTTPServer

    @property
    def state(self) -> SimulatorState:
        return self.server.simulator.state

    def log_message(self, format, *args):
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    # --- plumbing -------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        raw = self._read_body()
        if path.startswith("/_simulator/"):
            self._write(self._control(method, path, raw))
            return
        if path in {"/checkoutnow", "/"}:
            self._payer_page(method, path, query, raw)
            return

        plan = self.state.take_failure(path)
        if plan is not None and plan.mode == "disconnect":
            self._log(method, path, None, "disconnected")
            self.close_connection = True
            return
        if plan is not None and plan.mode == "status":
            answer = paypal_error(plan.status)
            self._log(method, path, answer.status, "injected")
            self._write(answer)
            return
        if plan is not None and plan.mode == "delay":
            time.sleep(plan.seconds)
        if plan is not None and plan.mode == "hold":
            self.state.hold(plan)

        answer = self._api(method, path, raw)
        if plan is not None and plan.mode == "drop_response":
            self._log(method, path, answer.status, "answer dropped")
            self.close_connection = True
            return
        self._log(method, path, answer.status, "replayed" if answer.headers.get("X-Simulator-Replay") else "")
        self._write(answer)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json(self, raw: bytes):
        if not raw.strip():
            return None
        return json.loads(raw)

    def _log(self, method: str, path: str, status: int | None, note: str) -> None:
        self.state.log_request(
            {
                "method": method,
                "path": path,
                "request_id": self.headers.get("PayPal-Request-Id"),
                "status": status,
                "note": note,
            }
        )

    def _write(self, answer: Answer) -> None:
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if isinstance(answer.body, dict) and answer.body.get("debug_id"):
            headers.append(("Paypal-Debug-Id", answer.body["debug_id"]))
        self._send(answer.status, [*headers, *answer.headers.items()], payload)

    def _write_html(self, status: int, content: str, location: str = "") -> None:
        payload = content.encode()
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(payload)))]
        if location:
            headers.append(("Location", location))
        self._send(status, headers, payload)

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        """Status line, headers and body in one write, so in one send: written in two (the headers on
        ``end_headers()``, then the body), the body waited behind Nagle's algorithm for the client's
        delayed ACK of the headers, ~40 ms on every answer."""
        socket_writer, self.wfile = self.wfile, io.BytesIO()
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            answer = self.wfile.getvalue()
        finally:
            self.wfile = socket_writer
        self.wfile.write(answer)

    # --- PayPal's API ---------------------------------------------------------------------------

    def _api(self, method: str, path: str, raw: bytes) -> Answer:
        if method == "POST" and path == "/v1/oauth2/token":
            form = {key: values[0] for key, values in parse_qs(raw.decode(errors="replace")).items()}
            return self.state.token(authorization=self.headers.get("Authorization", ""), form=form)

        unauthenticated = self.state.authenticate(self.headers.get("Authorization", ""))
        if unauthenticated is not None:
            return unauthenticated
        try:
            body = self._json(raw)
        except ValueError:
            return paypal_error(
                400,
                detail={
                    "field": "/",
                    "location": "body",
                    "issue": "MALFORMED_REQUEST_JSON",
                    "description": "The request JSON is not well formed.",
                },
            )
        request_id = self.headers.get("PayPal-Request-Id")

        if method == "POST" and path == "/v2/checkout/orders":
            answer = self.state.order_create(
                body=body, request_id=request_id, prefer=self.headers.get("Prefer", "")
            )
            return answer
        if method == "GET" and (match := ORDER_PATH.match(path)):
            return self.state.order_get(match["id"])
        if method == "POST" and (match := CAPTURE_ORDER_PATH.match(path)):
            answer = self.state.order_capture(match["id"], request_id=request_id)
            self._auto_webhook_after_capture(match["id"], answer)
            return answer
        if method == "GET" and (match := CAPTURE_PATH.match(path)):
            return self.state.capture_get(match["id"])
        if method == "POST" and (match := REFUND_PATH.match(path)):
            answer = self.state.capture_refund(match["id"], body=body, request_id=request_id)
            if answer.status == 201:
                with self.state.lock:
                    order_id = self.state.captures[match["id"]].order_id
                self.server.simulator.send_webhook_later(order_id, "PAYMENT.CAPTURE.REFUNDED")
            return answer
        if method == "POST" and path == "/v1/notifications/verify-webhook-signature":
            return self.state.verify_webhook_signature(body)
        return paypal_error(404, detail={"issue": "INVALID_RESOURCE_ID", "description": f"No route {path}"})

    def _auto_webhook_after_capture(self, order_id: str, answer: Answer) -> None:
        if answer.status != 201:
            return
        for unit in answer.body.get("purchase_units", []):
            for capture in unit.get("payments", {}).get("captures", []):
                if capture["status"] == "COMPLETED":
                    self.server.simulator.send_webhook_later(order_id, "PAYMENT.CAPTURE.COMPLETED")
                    return

    # --- The payer's pages ----------------------------------------------------------------------

    def _payer_page(self, method: str, path: str, query: dict, raw: bytes) -> None:
        if path == "/":
            self._write_html(200, self._index_page())
            return
        order_id = (query.get("token") or [""])[0]
        order = self.state.order_for_payer(order_id)
        if order is None:
            self._write_html(404, _page("Order not found", "<p>This PayPal order does not exist.</p>"))
            return
        if method == "GET":
            self._write_html(200, _approve_page(order))
            return
        if method != "POST":
            self._write_html(405, _page("Not allowed", "<p>Use the buttons on the order page.</p>"))
            return
        action = (parse_qs(raw.decode(errors="replace")).get("action") or [""])[0]
        if action == "approve":
            approved, changed = self.state.approve(order_id)
            if changed:
                self.server.simulator.send_webhook_later(order_id, "CHECKOUT.ORDER.APPROVED")
            location = self.state.return_redirect(approved)
            if approved.status == "COMPLETED" and not location:
                self._write_html(200, _page("Paid", "<p>This order is already paid.</p>"))
                return
        elif action == "cancel":
            with self.state.lock:
                location = self.state.cancel_redirect(self.state.orders[order_id])
        else:
            self._write_html(400, _page("Unknown action", "<p>Press Approve or Cancel.</p>"))
            return
        if not location:
            self._write_html(
                200,
                _page(
                    "Done",
                    f"<p>Order {html.escape(order_id)}: {html.escape(action)}. You can close this page.</p>",
                ),
            )
            return
        self._write_html(
            303, _page("Redirecting", f'<p><a href="{html.escape(location)}">Continue</a></p>'), location
        )

    def _index_page(self) -> str:
        with self.state.lock:
            rows = "".join(
                f'<tr><td><a href="/checkoutnow?token={html.escape(order.id)}">'
                f"{html.escape(order.id)}</a></td>"
                f"<td>{html.escape(order.status)}</td>"
                f"<td>{html.escape(order.purchase_units[0]['amount']['value'])} "
                f"{html.escape(order.purchase_units[0]['amount']['currency_code'])}</td></tr>"
                for order in reversed(list(self.state.orders.values()))
            )
        table = f"<table><tr><th>Order</th><th>Status</th><th>Amount</th></tr>{rows}</table>" if rows else ""
        return _page("PayPal simulator", f"<p>Orders v2 subset for local checkout.</p>{table}")

    # --- Control API ----------------------------------------------------------------------------

    def _control(self, method: str, path: str, raw: bytes) -> Answer:
        try:
            options = self._json(raw) or {}
        except ValueError:
            return Answer(400, {"error": "the body must be JSON"})
        if not isinstance(options, dict):
            return Answer(400, {"error": "the body must be a JSON object"})
        simulator = self.server.simulator
        state = self.state
        try:
            if method == "POST" and path == "/_simulator/reset":
                state.reset()
                return Answer(200, {"reset": True})
            if method == "GET" and path == "/_simulator/requests":
                with state.lock:
                    return Answer(200, {"requests": list(state.requests)})
            if method == "POST" and path == "/_simulator/fail":
                plan = state.add_failure(
                    count=int(options.get("count", 1)),
                    mode=options.get("mode", "status"),
                    status=int(options.get("status", 503)),
                    match=str(options.get("match", "")),
                    seconds=float(options.get("seconds", 0)),
                )
                return Answer(200, {"planned": plan.describe()})
            if method == "GET" and path == "/_simulator/held":
                return Answer(200, {"held": state.held()})
            if method == "POST" and path == "/_simulator/release":
                return Answer(200, {"released": state.release_held()})
            if method == "POST" and path == "/_simulator/config":
                if "webhook_url" in options:
                    state.webhook_url = options["webhook_url"] or None
                return Answer(200, {"webhook_url": state.webhook_url})
            if match := CONTROL_SETTLE_PATH.match(path):
                return state.settle_capture(match["id"], str(options.get("status", "")))
            if method == "POST" and (match := CONTROL_REFUND_PATH.match(path)):
                value = options.get("value")
                answer = state.merchant_refund(match["id"], None if value is None else str(value))
                if answer.status == 201:
                    with state.lock:
                        order_id = state.captures[match["id"]].order_id
                    simulator.send_webhook_later(order_id, "PAYMENT.CAPTURE.REFUNDED")
                return answer
            if match := CONTROL_RESEND_PATH.match(path):
                return self._control_resend(match["id"], options)
            if match := CONTROL_ORDER_PATH.match(path):
                return self._control_order(method, match["id"], match["action"] or "", options, simulator)
        except (ValueError, TypeError) as error:
            return Answer(400, {"error": str(error)})
        return Answer(404, {"error": f"no control route {method} {path}"})

    def _control_order(self, method, order_id, action, options, simulator) -> Answer:
        state = self.state
        if state.snapshot(order_id) is None:
            return Answer(404, {"error": f"no order {order_id}"})
        if method == "GET" and action == "":
            return Answer(200, state.snapshot(order_id))
        if method != "POST":
            return Answer(405, {"error": "use POST"})
        if action == "/approve":
            order, changed = state.approve(order_id)
            if changed:
                simulator.send_webhook_later(order_id, "CHECKOUT.ORDER.APPROVED")
            return Answer(200, {**state.snapshot(order_id), "redirect": state.return_redirect(order)})
        if action == "/decline-next-capture":
            state.set_next_capture(order_id, "INSTRUMENT_DECLINED")
            return Answer(200, state.snapshot(order_id))
        if action == "/next-capture":
            outcome = str(options.get("outcome", "")).upper()
            if outcome not in CAPTURE_OUTCOMES:
                return Answer(400, {"error": f"outcome must be one of {', '.join(CAPTURE_OUTCOMES)}"})
            state.set_next_capture(order_id, outcome, options.get("amount"))
            return Answer(200, state.snapshot(order_id))
        if action == "/expire":
            state.expire_order(order_id)
            return Answer(200, state.snapshot(order_id))
        if action == "/capture":
            answer = state.capture_now(order_id)
            self._auto_webhook_after_capture(order_id, answer)
            return answer
        if action == "/webhook":
            event_type = str(options.get("event_type", ""))
            if event_type not in WEBHOOK_EVENT_TYPES:
                return Answer(400, {"error": f"event_type must be one of {', '.join(WEBHOOK_EVENT_TYPES)}"})
            try:
                event = state.webhook_event(order_id, event_type)
            except LookupError as error:
                return Answer(409, {"error": str(error)})
            return Answer(200, simulator.sign_and_deliver(event, options.get("url")))
        return Answer(404, {"error": f"no control action {action}"})

    def _control_resend(self, event_id: str, options: dict) -> Answer:
        body = self.state.webhook_body(event_id)
        if body is None:
            return Answer(404, {"error": f"no event {event_id}"})
        return Answer(200, self.server.simulator.sign_and_deliver(json.loads(body), options.get("url")))


def _page(title: str, content: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · PayPal simulator</title>"
        "<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}button{font-size:1.1rem;"
        "margin-right:1rem;padding:.5rem 1.5rem}td,th{padding:.2rem .6rem;text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
    )


def _approve_page(order: dict) -> str:
    token = html.escape(order["id"])
    rows = []
    for unit in order["purchase_units"]:
        for item in unit.get("items", []):
            rows.append(
                f"<tr><td>{html.escape(str(item.get('name', '')))}</td>"
                f"<td>{html.escape(str(item.get('quantity', '')))}</td>"
                f"<td>{html.escape(str(item.get('unit_amount', {}).get('value', '')))}</td></tr>"
            )
    total = order["purchase_units"][0]["amount"]
    items = (
        "<table><tr><th>Item</th><th>Quantity</th><th>Unit price</th></tr>" + "".join(rows) + "</table>"
        if rows
        else ""
    )
    state_note = (
        ""
        if order["status"] in {"CREATED", "PAYER_ACTION_REQUIRED"}
        else f"<p>This order is already {html.escape(order['status'])}.</p>"
    )
    return _page(
        "Pay with PayPal (simulator)",
        f"<p>Order <code>{token}</code></p>{items}"
        f"<p><strong>Total: {html.escape(total['value'])} {html.escape(total['currency_code'])}</strong></p>"
        f"{state_note}"
        f'<form method="post" action="/checkoutnow?token={token}">'
        '<button type="submit" name="action" value="approve">Approve</button>'
        '<button type="submit" name="action" value="cancel">Cancel</button>'
        "</form>",
    )


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, simulator: PayPalSimulator):
        self.simulator = simulator
        super().__init__(address, SimulatorRequestHandler)

    def handle_error(self, request, client_address):
        # A client that gave up (its timeout) before the answer was written: normal here.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            logger.debug("client %s went away before its answer", client_address)
            return
        super().handle_error(request, client_address)


class PayPalSimulator:
    """One simulator: ``start()`` serves it in a thread (tests), ``serve_forever()`` in this one."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str | None = None,
        client_secret: str | None = None,
        webhook_id: str = "simulator-webhook",
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
        public_url: str | None = None,
    ):
        self.httpd = SimulatorHTTPServer((host, port), self)
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        # The approve links handed to payers; the bind address when not given.
        self.public_url = (public_url or self.url).rstrip("/")
        self.state = SimulatorState(
            base_url=self.url,
            public_url=self.public_url,
            client_id=client_id,
            client_secret=client_secret,
            webhook_id=webhook_id,
            webhook_secret=webhook_secret,
            webhook_url=webhook_url,
        )
        self._thread: threading.Thread | None = None

    def start(self) -> PayPalSimulator:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="paypal-simulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call from another thread than the server's."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        self.state.reset()

    def sign_and_deliver(self, event: dict, url: str | None) -> dict:
        body, headers = self.state.webhook_sign(event)
        result = {"event": event, "headers": headers, "body": body.decode()}
        if url:
            result["delivery"] = deliver_webhook(url, body, headers)
        return result

    def send_webhook_later(self, order_id: str, event_type: str) -> None:
        """With a ``webhook_url`` configured, send the event from a background thread, as PayPal does
        (retrying a few times when the shop does not answer 2xx)."""
        url = self.state.webhook_url
        if not url:
            return
        try:
            event = self.state.webhook_event(order_id, event_type)
        except LookupError:
            return

        def send():
            for attempt in range(4):
                delivery = self.sign_and_deliver(event, url)["delivery"]
                if delivery.get("status") and 200 <= delivery["status"] < 300:
                    return
                logger.warning("webhook %s to %s: %s", event["event_type"], url, delivery)
                time.sleep(2**attempt)

        threading.Thread(target=send, name="paypal-simulator-webhook", daemon=True).start()
