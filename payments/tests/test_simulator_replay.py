"""The simulator's PayPal-Request-Id replay (one decorator on create, capture and refund), without HTTP."""

from payments.simulator.state import SimulatorState

ORDER = {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "10.00"}}]}


def test_only_successful_answers_are_kept_for_replay():
    state = SimulatorState()

    refused = state.order_create(body={"intent": "CAPTURE"}, request_id="create-1")
    created = state.order_create(body=ORDER, request_id="create-1")
    replayed = state.order_create(body=ORDER, request_id="create-1")

    assert refused.status == 400
    assert created.status == 201  # the error was not kept: the retry is processed afresh
    assert replayed.status == 200
    assert replayed.headers == {"X-Simulator-Replay": "true"}
    assert replayed.body == created.body
    assert list(state.orders) == [created.body["id"]]


def test_replay_is_per_operation_and_resource_and_hands_out_copies():
    state = SimulatorState()
    order_id = state.order_create(body=ORDER, request_id=None).body["id"]
    state.approve(order_id)

    captured = state.order_capture(order_id, request_id="same")
    again = state.order_capture(order_id, request_id="same")
    again.body["status"] = "CHANGED BY A CLIENT"
    once_more = state.order_capture(order_id, request_id="same")
    other_create = state.order_create(body=ORDER, request_id="same")

    assert captured.status == 201
    assert (again.status, once_more.status) == (200, 200)
    assert once_more.body["status"] == "COMPLETED"
    assert state.snapshot(order_id)["capture_calls"] == 1
    assert other_create.status == 201  # the same request id for another operation is another request
    assert len(state.orders) == 2
