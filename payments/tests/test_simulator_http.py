"""The simulator's HTTP face writes each answer in one send, on a TCP_NODELAY socket (issue 15).

Headers and body in two sends with Nagle's algorithm on made every answer wait for the client's
delayed ACK (~40 ms). These tests count the sends on the server's side of the connection.
"""

import base64
import http.client
import json
import socket

import pytest

from payments.simulator import PayPalSimulator


class CountingSocket:
    """The server's side of one accepted connection, keeping every buffer the server sends on it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sends: list[bytes] = []

    def sendall(self, data, *args):
        self.sends.append(bytes(data))
        return self.sock.sendall(data, *args)

    def send(self, data, *args):
        self.sends.append(bytes(data))
        return self.sock.send(data, *args)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.fixture
def counted():
    """A simulator of its own whose accepted sockets count their sends; (simulator, accepted sockets)."""
    simulator = PayPalSimulator(port=0)
    accepted: list[CountingSocket] = []
    accept = simulator.httpd.get_request

    def get_request():
        sock, address = accept()
        accepted.append(CountingSocket(sock))
        return accepted[-1], address

    simulator.httpd.get_request = get_request
    simulator.start()
    yield simulator, accepted
    simulator.stop()


def many_items_order(count: int) -> dict:
    items = [
        {"name": f"Item {n}", "quantity": "1", "unit_amount": {"currency_code": "USD", "value": "1.00"}}
        for n in range(count)
    ]
    total = {"currency_code": "USD", "value": f"{count}.00"}
    return {
        "intent": "CAPTURE",
        "purchase_units": [{"amount": {**total, "breakdown": {"item_total": total}}, "items": items}],
    }


def test_every_answer_is_written_in_one_send(counted):
    simulator, accepted = counted
    connection = http.client.HTTPConnection(simulator.host, simulator.port, timeout=10)
    answers = 0

    def call(method, path, body=None, headers=None):
        nonlocal answers
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
        answers += 1
        (sock,) = accepted  # one kept-alive connection for every call
        assert len(sock.sends) == answers, f"{method} {path}: the answer took more than one send"
        assert sock.sends[-1].startswith(f"HTTP/1.1 {response.status} ".encode())
        assert sock.sends[-1].endswith(b"\r\n\r\n" + payload)
        return response.status, payload

    credentials = base64.b64encode(b"client:secret").decode()
    status, payload = call(
        "POST",
        "/v1/oauth2/token",
        "grant_type=client_credentials",
        {"Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    api = {
        "Authorization": f"Bearer {json.loads(payload)['access_token']}",
        "Content-Type": "application/json",
    }
    # A large answer (the whole order with 400 items, tens of kilobytes) is one send too.
    status, payload = call(
        "POST",
        "/v2/checkout/orders",
        json.dumps(many_items_order(400)),
        {**api, "Prefer": "return=representation"},
    )
    assert status == 201
    assert len(payload) > 32_000
    order_id = json.loads(payload)["id"]
    assert call("GET", f"/v2/checkout/orders/{order_id}", headers=api)[0] == 200
    assert call("GET", "/v2/checkout/orders/NO-SUCH-ORDER", headers=api)[0] == 404
    assert call("GET", f"/checkoutnow?token={order_id}")[0] == 200  # the payer's HTML page
    assert call("POST", "/_simulator/fail", json.dumps({"count": 1}), api)[0] == 200
    assert call("GET", f"/v2/checkout/orders/{order_id}", headers=api)[0] == 503  # injected
    assert call("GET", "/_simulator/held")[0] == 200
    connection.close()


def test_the_server_side_socket_has_nagles_algorithm_off(counted):
    simulator, accepted = counted
    connection = http.client.HTTPConnection(simulator.host, simulator.port, timeout=10)
    connection.request("GET", "/_simulator/held")
    assert connection.getresponse().read()

    (sock,) = accepted
    assert sock.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    connection.close()
