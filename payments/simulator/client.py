"""A small client of the simulator's control API, for tests and demo scripts (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class SimulatorControlError(Exception):
    def __init__(self, status: int, body):
        super().__init__(f"simulator answered {status}: {body}")
        self.status = status
        self.body = body


class SimulatorClient:
    def __init__(self, url: str, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: dict | None = None):
        data = None if payload is None and method == "GET" else json.dumps(payload or {}).encode()
        request = urllib.request.Request(  # noqa: S310 (a local URL the caller chose)
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            raise SimulatorControlError(error.code, body) from error

    def reset(self) -> None:
        self._call("POST", "/_simulator/reset")

    def order(self, order_id: str) -> dict:
        return self._call("GET", f"/_simulator/orders/{order_id}")

    def approve(self, order_id: str) -> dict:
        return self._call("POST", f"/_simulator/orders/{order_id}/approve")

    def decline_next_capture(self, order_id: str) -> dict:
        return self._call("POST", f"/_simulator/orders/{order_id}/decline-next-capture")

    def next_capture(self, order_id: str, outcome: str, *, amount: dict | None = None) -> dict:
        """``outcome``: COMPLETED, PENDING or one of PayPal's refusals; ``amount``: {"value",
        "currency_code"} to capture another amount than the order's."""
        payload = {"outcome": outcome, **({"amount": amount} if amount is not None else {})}
        return self._call("POST", f"/_simulator/orders/{order_id}/next-capture", payload)

    def expire(self, order_id: str) -> dict:
        return self._call("POST", f"/_simulator/orders/{order_id}/expire")

    def refund(self, capture_id: str, value: str | None = None) -> dict:
        """The merchant refunds ``value`` (all that is left when None) of a capture from the dashboard."""
        return self._call(
            "POST", f"/_simulator/captures/{capture_id}/refund", {} if value is None else {"value": value}
        )

    def held(self) -> int:
        return self._call("GET", "/_simulator/held")["held"]

    def release(self) -> int:
        return self._call("POST", "/_simulator/release")["released"]

    def capture(self, order_id: str) -> dict:
        return self._call("POST", f"/_simulator/orders/{order_id}/capture")

    def settle_capture(self, capture_id: str, status: str) -> dict:
        return self._call("POST", f"/_simulator/captures/{capture_id}/settle", {"status": status})

    def fail(
        self, count: int = 1, *, mode: str = "status", status: int = 503, match: str = "", seconds: float = 0
    ) -> dict:
        return self._call(
            "POST",
            "/_simulator/fail",
            {"count": count, "mode": mode, "status": status, "match": match, "seconds": seconds},
        )

    def webhook(self, order_id: str, event_type: str, url: str | None = None) -> dict:
        return self._call(
            "POST", f"/_simulator/orders/{order_id}/webhook", {"event_type": event_type, "url": url}
        )

    def resend_webhook(self, event_id: str, url: str) -> dict:
        return self._call("POST", f"/_simulator/webhooks/{event_id}/resend", {"url": url})

    def requests(self) -> list[dict]:
        return self._call("GET", "/_simulator/requests")["requests"]

    def configure(self, *, webhook_url: str | None) -> dict:
        return self._call("POST", "/_simulator/config", {"webhook_url": webhook_url})
