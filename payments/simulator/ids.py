"""Identifiers and timestamps shaped like PayPal's."""

from __future__ import annotations

import secrets
import string
from datetime import datetime, timezone

ID_ALPHABET = string.ascii_uppercase + string.digits


def new_id(length: int = 17) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
