"""OAuth: client credentials for a bearer token, and the check of that token on every API call."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from payments.simulator.answers import Answer, paypal_error
from payments.simulator.ids import now_iso
from payments.simulator.store import Store


def token(store: Store, *, authorization: str, form: dict[str, str]) -> Answer:
    if form.get("grant_type") != "client_credentials":
        return Answer(
            400,
            {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL or unsupported"},
        )
    client_id, client_secret = basic_credentials(authorization)
    known = store.client_id is None or (
        hmac.compare_digest(client_id or "", store.client_id)
        and hmac.compare_digest(client_secret or "", store.client_secret or "")
    )
    if not client_id or not known:
        return Answer(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
    access_token = "A21AA" + secrets.token_urlsafe(48)
    with store.lock:
        store.tokens.add(access_token)
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


def basic_credentials(authorization: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


def authenticate(store: Store, authorization: str) -> Answer | None:
    """None when ``authorization`` carries a token this simulator issued; the 401 answer otherwise."""
    scheme, _, bearer = (authorization or "").partition(" ")
    with store.lock:
        if scheme.lower() == "bearer" and bearer.strip() in store.tokens:
            return None
    if not bearer:
        return paypal_error(401)
    return Answer(401, {"error": "invalid_token", "error_description": "Token signature verification failed"})
