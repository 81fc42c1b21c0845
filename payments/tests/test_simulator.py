"""The simulator on its own, over plain HTTP: PayPal's status codes, error bodies, request-id replay,
the approve page without JavaScript, the control API, webhook signatures."""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from payments.simulator.client import SimulatorControlError
from tests.fixtures.paypal import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, SIMULATOR_WEBHOOK_ID

ORDER = {
    "intent": "CAPTURE",
    "purchase_units": [
        {
            "reference_id": "tx-1",
            "amount": {
                "currency_code": "USD",
                "value": "25.00",
                "breakdown": {"item_total": {"currency_code": "USD", "value": "25.00"}},
            },
            "items": [
                {"name": "Mug", "quantity": "2", "unit_amount": {"currency_code": "USD", "value": "10.00"}},
                {"name": "Tea", "quantity": "1", "unit_amount": {"currency_code": "USD", "value": "5.00"}},
            ],
        }
    ],
    # What the SDK sends: experience_context with its default fields.
    "payment_source": {
        "paypal": {
            "experience_context": {
                "shipping_preference": "NO_SHIPPING",
                "contact_preference": "NO_CONTACT_INFO",
                "landing_page": "NO_PREFERENCE",
                "user_action": "PAY_NOW",
                "payment_method_preference": "UNRESTRICTED",
                "return_url": "http://shop.example/payments/paypal/return/",
                "cancel_url": "http://shop.example/payments/paypal/cancel/?from=paypal",
            }
        }
    },
}


@pytest.fixture
def api(paypal):
    """A requests session authenticated at the simulator, as an API client would be."""
    answer = requests.post(
        f"{paypal.url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    session.base = paypal.url
    yield session
    session.close()


def create(api, body=ORDER, request_id=None):
    headers = {"PayPal-Request-Id": request_id} if request_id else {}
    return api.post(f"{api.base}/v2/checkout/orders", json=body, headers=headers, timeout=5)


def capture(api, order_id, request_id=None):
    headers = {"PayPal-Request-Id": request_id} if request_id else {}
    return api.post(f"{api.base}/v2/checkout/orders/{order_id}/capture", json={}, headers=headers, timeout=5)


def assert_paypal_error(answer, status, issue):
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"name", "message", "debug_id", "details"}
    assert body["details"][0]["issue"] == issue
    assert body["details"][0]["description"]
    return body


def link(body, rel):
    return next(item["href"] for item in body["links"] if item["rel"] == rel)


class FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms, self.buttons, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(attrs)
        elif tag == "button":
            self.buttons.append(attrs)
            self._button = attrs
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        if getattr(self, "_button", None) is not None:
            self._button["label"] = data.strip()
            self._button = None


def approve_page(url):
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    page = FormParser()
    page.feed(answer.text)
    return answer, page


# --- OAuth ------------------------------------------------------------------------------------------


def test_token_requires_the_right_client_credentials(paypal):
    wrong = requests.post(
        f"{paypal.url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(SIMULATOR_CLIENT_ID, "not-the-secret"),
        timeout=5,
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    grant = requests.post(
        f"{paypal.url}/v1/oauth2/token", data={"grant_type": "password"}, auth=("a", "b"), timeout=5
    )
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"


def test_api_calls_need_a_token_it_issued(paypal):
    answer = requests.post(
        f"{paypal.url}/v2/checkout/orders", json=ORDER, headers={"Authorization": "Bearer forged"}, timeout=5
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


# --- Orders -----------------------------------------------------------------------------------------


def test_create_answers_201_and_replays_the_request_id_with_200(api):
    first = create(api, request_id="tx-1-create")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "PAYER_ACTION_REQUIRED"
    assert link(body, "approve") == f"{api.base}/checkoutnow?token={body['id']}"
    assert link(body, "payer-action") == link(body, "approve")

    again = create(api, request_id="tx-1-create")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]

    other = create(api, request_id="tx-2-create")
    assert other.status_code == 201
    assert other.json()["id"] != body["id"]


def test_create_with_application_context_is_created_with_an_approve_link(api):
    body = {key: value for key, value in ORDER.items() if key != "payment_source"}
    body["application_context"] = {
        "return_url": "http://shop.example/r",
        "cancel_url": "http://shop.example/c",
    }
    answer = create(api, body)
    assert answer.status_code == 201
    assert answer.json()["status"] == "CREATED"
    assert [item["rel"] for item in answer.json()["links"]] == ["self", "approve", "update"]


def test_create_validates_like_paypal(api):
    missing = create(api, {"purchase_units": ORDER["purchase_units"]})
    body = assert_paypal_error(missing, 400, "MISSING_REQUIRED_PARAMETER")
    assert body["name"] == "INVALID_REQUEST"
    assert body["details"][0]["field"] == "/intent"

    wrong_total = json.loads(json.dumps(ORDER))
    wrong_total["purchase_units"][0]["amount"]["breakdown"]["item_total"]["value"] = "24.00"
    assert assert_paypal_error(create(api, wrong_total), 422, "ITEM_TOTAL_MISMATCH")["name"] == (
        "UNPROCESSABLE_ENTITY"
    )

    wrong_amount = json.loads(json.dumps(ORDER))
    wrong_amount["purchase_units"][0]["amount"]["value"] = "1.00"
    assert_paypal_error(create(api, wrong_amount), 422, "AMOUNT_MISMATCH")

    malformed = api.post(
        f"{api.base}/v2/checkout/orders",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert_paypal_error(malformed, 400, "MALFORMED_REQUEST_JSON")


def test_unknown_order_is_404_resource_not_found(api):
    answer = api.get(f"{api.base}/v2/checkout/orders/NOSUCHORDER", timeout=5)
    body = assert_paypal_error(answer, 404, "INVALID_RESOURCE_ID")
    assert body["name"] == "RESOURCE_NOT_FOUND"


def test_capture_before_approval_is_422_order_not_approved(api):
    order_id = create(api).json()["id"]
    body = assert_paypal_error(capture(api, order_id), 422, "ORDER_NOT_APPROVED")
    assert body["name"] == "UNPROCESSABLE_ENTITY"
    assert api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5).json()["status"] == (
        "PAYER_ACTION_REQUIRED"
    )


def test_capture_completes_once_and_replays_by_request_id(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)

    first = capture(api, order_id, request_id="tx-1-capture")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "COMPLETED"
    captures = body["purchase_units"][0]["payments"]["captures"]
    assert [(item["status"], item["amount"]) for item in captures] == [
        ("COMPLETED", {"currency_code": "USD", "value": "25.00"})
    ]
    assert body["payer"]["payer_id"]

    replay = capture(api, order_id, request_id="tx-1-capture")
    assert replay.status_code == 200
    assert replay.json()["purchase_units"][0]["payments"]["captures"][0]["id"] == captures[0]["id"]

    assert_paypal_error(capture(api, order_id, request_id="another"), 422, "ORDER_ALREADY_CAPTURED")
    assert paypal.order(order_id)["capture_calls"] == 1


def test_decline_next_capture_is_422_instrument_declined_and_only_once(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    assert paypal.decline_next_capture(order_id)["next_capture"] == "INSTRUMENT_DECLINED"

    body = assert_paypal_error(capture(api, order_id, request_id="first"), 422, "INSTRUMENT_DECLINED")
    assert link(body, "redirect") == f"{api.base}/checkoutnow?token={order_id}"
    # An error is not kept for replay, and the order is still APPROVED: the next capture goes through.
    assert capture(api, order_id, request_id="first").status_code == 201


@pytest.mark.parametrize("issue", ["TRANSACTION_REFUSED", "PAYER_CANNOT_PAY", "ORDER_COMPLETION_IN_PROGRESS"])
def test_next_capture_can_be_any_of_paypals_refusals(api, paypal, issue):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    assert paypal.next_capture(order_id, issue)["next_capture"] == issue
    assert_paypal_error(capture(api, order_id), 422, issue)
    assert paypal.order(order_id)["order"]["status"] == "APPROVED"  # nothing was captured
    assert capture(api, order_id).status_code == 201
    with pytest.raises(SimulatorControlError) as unknown:
        paypal.next_capture(order_id, "NOT_A_PAYPAL_ISSUE")
    assert unknown.value.status == 400


def test_next_capture_can_take_another_amount_than_the_orders(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    paypal.next_capture(order_id, "COMPLETED", amount={"value": "1.00", "currency_code": "EUR"})
    captured = capture(api, order_id).json()["purchase_units"][0]
    assert captured["amount"]["value"] == "25.00"  # the order's amount is unchanged...
    assert captured["payments"]["captures"][0]["amount"] == {"currency_code": "EUR", "value": "1.00"}
    with pytest.raises(SimulatorControlError) as bad:
        paypal.next_capture(order_id, "COMPLETED", amount={"value": "x"})
    assert bad.value.status == 400


def test_an_order_never_captured_can_expire_at_paypal(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    assert paypal.expire(order_id)["expired"] is True
    assert_paypal_error(
        api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5), 404, "INVALID_RESOURCE_ID"
    )
    assert_paypal_error(capture(api, order_id), 404, "INVALID_RESOURCE_ID")

    captured_id = create(api, request_id="other").json()["id"]
    paypal.approve(captured_id)
    capture(api, captured_id)
    with pytest.raises(SimulatorControlError) as captured:
        paypal.expire(captured_id)
    assert captured.value.status == 400


def test_the_merchant_refunds_part_of_a_capture_from_the_dashboard(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    capture_id = capture(api, order_id).json()["purchase_units"][0]["payments"]["captures"][0]["id"]
    assert paypal.refund(capture_id, "10.00")["amount"]["value"] == "10.00"
    unit = api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5).json()["purchase_units"][0]
    assert unit["payments"]["captures"][0]["status"] == "PARTIALLY_REFUNDED"
    assert paypal.refund(capture_id)["amount"]["value"] == "15.00"  # the rest
    unit = api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5).json()["purchase_units"][0]
    assert unit["payments"]["captures"][0]["status"] == "REFUNDED"
    assert [refund["amount"]["value"] for refund in unit["payments"]["refunds"]] == ["10.00", "15.00"]
    event = paypal.webhook(order_id, "PAYMENT.CAPTURE.REFUNDED")["event"]
    assert event["resource"]["supplementary_data"]["related_ids"]["capture_id"] == capture_id


def test_a_held_request_waits_for_its_release_then_is_processed(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    paypal.fail(1, mode="hold", match="/capture")
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(capture, api, order_id)
        wait_until(lambda: paypal.held() == 1)
        assert paypal.order(order_id)["capture_calls"] == 0  # held before PayPal did anything
        assert paypal.release() == 1
        assert answer.result(timeout=10).status_code == 201
    assert paypal.held() == 0 and paypal.order(order_id)["capture_calls"] == 1


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_capture_can_be_held_for_review_then_settled(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    paypal.next_capture(order_id, "PENDING")
    held = capture(api, order_id).json()["purchase_units"][0]["payments"]["captures"][0]
    assert (held["status"], held["status_details"]["reason"]) == ("PENDING", "PENDING_REVIEW")

    assert paypal.settle_capture(held["id"], "DECLINED")["status"] == "DECLINED"
    assert api.get(f"{api.base}/v2/payments/captures/{held['id']}", timeout=5).json()["status"] == "DECLINED"


def test_refund_replays_and_cannot_refund_twice(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    capture_id = capture(api, order_id).json()["purchase_units"][0]["payments"]["captures"][0]["id"]
    url = f"{api.base}/v2/payments/captures/{capture_id}/refund"

    first = api.post(url, json={}, headers={"PayPal-Request-Id": "r-1"}, timeout=5)
    assert first.status_code == 201
    assert (first.json()["status"], first.json()["amount"]["value"]) == ("COMPLETED", "25.00")
    replay = api.post(url, json={}, headers={"PayPal-Request-Id": "r-1"}, timeout=5)
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    assert_paypal_error(
        api.post(url, json={}, headers={"PayPal-Request-Id": "r-2"}, timeout=5), 422, "CAPTURE_FULLY_REFUNDED"
    )
    captured = api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5).json()["purchase_units"][0]
    assert captured["payments"]["captures"][0]["status"] == "REFUNDED"
    assert_paypal_error(
        api.post(f"{api.base}/v2/payments/captures/NOPE/refund", json={}, timeout=5),
        404,
        "INVALID_RESOURCE_ID",
    )


# --- The payer's page -------------------------------------------------------------------------------


def test_approve_page_has_two_plain_buttons_and_approve_redirects_to_the_return_url(api, paypal):
    body = create(api).json()
    answer, page = approve_page(link(body, "approve"))
    assert "25.00 USD" in answer.text
    assert page.scripts == 0
    assert len(page.forms) == 1 and page.forms[0]["method"] == "post"
    assert [(button["type"], button["label"]) for button in page.buttons] == [
        ("submit", "Approve"),
        ("submit", "Cancel"),
    ]

    # What a browser without JavaScript does: post the form with the pressed button's name=value.
    approve = next(button for button in page.buttons if button["label"] == "Approve")
    posted = requests.post(
        f"{paypal.url}{page.forms[0]['action']}",
        data={approve["name"]: approve["value"]},
        allow_redirects=False,
        timeout=5,
    )
    assert posted.status_code == 303
    location = urlsplit(posted.headers["Location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}"
        == "http://shop.example/payments/paypal/return/"
    )
    query = parse_qs(location.query)
    assert query["token"] == [body["id"]]
    assert query["PayerID"] == [paypal.order(body["id"])["order"]["payer"]["payer_id"]]
    assert paypal.order(body["id"])["order"]["status"] == "APPROVED"


def test_cancel_button_redirects_to_the_cancel_url_and_approves_nothing(api, paypal):
    body = create(api).json()
    _answer, page = approve_page(link(body, "approve"))
    cancel = next(button for button in page.buttons if button["label"] == "Cancel")
    posted = requests.post(
        f"{paypal.url}{page.forms[0]['action']}",
        data={cancel["name"]: cancel["value"]},
        allow_redirects=False,
        timeout=5,
    )
    assert posted.status_code == 303
    # The cancel URL's own query is kept, and the token added.
    assert (
        posted.headers["Location"]
        == f"http://shop.example/payments/paypal/cancel/?from=paypal&token={body['id']}"
    )
    assert paypal.order(body["id"])["order"]["status"] == "PAYER_ACTION_REQUIRED"


def test_approve_page_of_an_unknown_order_is_404(paypal):
    assert requests.get(f"{paypal.url}/checkoutnow?token=NOPE", timeout=5).status_code == 404


# --- Faults -----------------------------------------------------------------------------------------


def test_fail_answers_503_for_the_next_n_calls_then_recovers(api, paypal):
    order_id = create(api).json()["id"]
    paypal.fail(2)
    for _ in range(2):
        answer = api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5)
        assert answer.status_code == 503
        assert answer.json()["name"] == "SERVICE_UNAVAILABLE"
    assert api.get(f"{api.base}/v2/checkout/orders/{order_id}", timeout=5).status_code == 200


def test_fail_can_drop_the_connection_or_lose_the_answer(api, paypal):
    order_id = create(api).json()["id"]
    paypal.approve(order_id)
    paypal.fail(1, mode="disconnect", match="/capture")
    with pytest.raises(requests.ConnectionError):
        capture(api, order_id, request_id="c")
    assert paypal.order(order_id)["capture_calls"] == 0

    paypal.fail(1, mode="drop_response", match="/capture")
    with pytest.raises(requests.ConnectionError):
        capture(api, order_id, request_id="c")
    # PayPal did capture: the answer was lost on the way back.
    assert paypal.order(order_id)["order"]["status"] == "COMPLETED"
    assert capture(api, order_id, request_id="c").status_code == 200
    notes = [entry["note"] for entry in paypal.requests() if entry["path"].endswith("/capture")]
    assert notes == ["disconnected", "answer dropped", "replayed"]


def test_control_api_reports_bad_requests(paypal):
    with pytest.raises(Exception, match="404"):
        paypal.approve("NOPE")
    with pytest.raises(Exception, match="mode must be one of"):
        paypal.fail(1, mode="explode")


# --- Webhooks ---------------------------------------------------------------------------------------


def verify(api, headers, event, webhook_id=SIMULATOR_WEBHOOK_ID):
    answer = api.post(
        f"{api.base}/v1/notifications/verify-webhook-signature",
        json={
            "auth_algo": headers["PAYPAL-AUTH-ALGO"],
            "cert_url": headers["PAYPAL-CERT-URL"],
            "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
            "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
            "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
            "webhook_id": webhook_id,
            "webhook_event": event,
        },
        timeout=5,
    )
    assert answer.status_code == 200
    return answer.json()["verification_status"]


def test_webhook_events_are_signed_and_verified(api, paypal):
    order_id = create(api).json()["id"]
    with pytest.raises(Exception, match="409"):
        paypal.webhook(order_id, "CHECKOUT.ORDER.APPROVED")  # not approved yet: nothing to tell
    paypal.approve(order_id)
    approved = paypal.webhook(order_id, "CHECKOUT.ORDER.APPROVED")
    event = json.loads(approved["body"])
    assert (event["event_type"], event["resource_type"], event["resource"]["id"]) == (
        "CHECKOUT.ORDER.APPROVED",
        "checkout-order",
        order_id,
    )
    assert event["resource"]["status"] == "APPROVED"
    assert set(approved["headers"]) >= {
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-AUTH-ALGO",
        "PAYPAL-CERT-URL",
    }
    assert verify(api, approved["headers"], event) == "SUCCESS"
    assert verify(api, approved["headers"], {**event, "summary": "tampered"}) == "FAILURE"
    assert verify(api, approved["headers"], event, webhook_id="someone-else") == "FAILURE"

    capture(api, order_id)
    completed = json.loads(paypal.webhook(order_id, "PAYMENT.CAPTURE.COMPLETED")["body"])
    assert completed["resource_type"] == "capture"
    assert completed["resource"]["status"] == "COMPLETED"
    assert completed["resource"]["supplementary_data"]["related_ids"]["order_id"] == order_id


def test_webhook_delivery_to_a_dead_url_is_reported(paypal):
    """Delivered to a URL where nobody listens: the control API says so rather than failing."""
    with requests.Session() as session:
        token = session.post(
            f"{paypal.url}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET),
            timeout=5,
        ).json()["access_token"]
        order_id = session.post(
            f"{paypal.url}/v2/checkout/orders",
            json=ORDER,
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()["id"]
    paypal.approve(order_id)
    result = paypal.webhook(order_id, "CHECKOUT.ORDER.APPROVED", url="http://127.0.0.1:9/webhook/")
    assert result["delivery"]["status"] is None
    assert result["delivery"]["error"]


# --- The command ------------------------------------------------------------------------------------


def test_run_paypal_simulator_command_serves_and_stops_on_sigterm():
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    process = subprocess.Popen(
        [sys.executable, str(manage), "run_paypal_simulator", "--port", "0", "--no-webhooks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings.test"},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("PayPal simulator listening on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip().rstrip("/")
        assert requests.get(f"{url}/", timeout=5).status_code == 200
        process.terminate()
        assert process.wait(timeout=10) == 0, process.stderr.read()
        assert "PayPal simulator stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_racing_creates_with_one_request_id_make_one_order(api, paypal):
    def post(_):
        return requests.post(
            f"{api.base}/v2/checkout/orders",
            json=ORDER,
            headers={**api.headers, "PayPal-Request-Id": "race"},
            timeout=10,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, range(8)))
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(paypal.server.state.orders) == 1


def test_the_simulator_does_not_import_django():
    code = (
        "import sys; from payments.simulator import PayPalSimulator; "
        "simulator = PayPalSimulator(port=0).start(); simulator.stop(); "
        "assert not any(name == 'django' or name.startswith('django.') for name in sys.modules), 'django'"
    )
    root = Path(__file__).resolve().parents[2]
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=environment, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
