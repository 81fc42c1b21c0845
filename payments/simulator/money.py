"""PayPal's money: ``{"currency_code", "value"}`` read from requests and written in answers."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from payments.simulator.answers import InvalidRequest

ZERO_DECIMAL_CURRENCIES = {"HUF", "JPY", "TWD"}


def format_money(amount: Decimal, currency: str) -> str:
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(amount.quantize(Decimal("1")))
    return str(amount.quantize(Decimal("0.01")))


def parse_money(value, path: str) -> tuple[Decimal, str]:
    """(amount, currency) of a money object of a request; ``InvalidRequest`` naming ``path`` otherwise."""
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


def fee_breakdown(amount: dict, gross_key: str, net_key: str) -> dict:
    """The gross amount, PayPal's fee (3.49 % + 0.49, never above the gross) and the net amount."""
    currency = amount["currency_code"]
    gross = Decimal(amount["value"])
    fee = (gross * Decimal("0.0349") + Decimal("0.49")).quantize(Decimal("0.01")) if gross else Decimal("0")
    fee = min(fee, gross)
    return {
        gross_key: dict(amount),
        "paypal_fee": {"currency_code": currency, "value": format_money(fee, currency)},
        net_key: {"currency_code": currency, "value": format_money(gross - fee, currency)},
    }
