"""Rate limits of the API (DRF throttles) and of the login, sign-up and password-reset pages, kept in
the cache that every process shares (``CACHE_URL``: Redis in production, local memory for make run).

The rates live in ``settings.API_THROTTLE_RATES`` and are read when a request is checked (DRF's own
classes read theirs once, at import), so that an operator's environment and a test's override apply.
"""

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import get_usage, is_ratelimited
from rest_framework import throttling


class _SettingsRate:
    cache = caches["default"]

    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_SettingsRate, throttling.AnonRateThrottle):
    """Anonymous callers, per client address."""


class UserThrottle(_SettingsRate, throttling.UserRateThrottle):
    """Signed-in callers, per user."""


class AuthThrottle(_SettingsRate, throttling.AnonRateThrottle):
    """Getting a token and registering: tight, per client address (password guessing, sign-up spam)."""

    scope = "auth"


class OrderPlacementThrottle(_SettingsRate, throttling.UserRateThrottle):
    """Placing orders: per user, on top of the general user rate and the pending-orders cap."""

    scope = "order_placement"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


def page_rate(name: str) -> str:
    """The rate of a page's POSTs for django-ratelimit (read per request, like the API's)."""
    return settings.PAGE_THROTTLE_RATES[name]


def client_ident(group, request) -> str:
    """The client address, as the API's throttles see it (``NUM_PROXIES`` trusted proxies)."""
    return throttling.BaseThrottle().get_ident(request)


def page_limited(request, name: str, *, key=client_ident) -> bool:
    """Count this POST against the page's rate; True when it is over (django-ratelimit, shared cache)."""
    return is_ratelimited(
        request, group=f"page:{name}", key=key, rate=page_rate(name), method="POST", increment=True
    )


def page_used_up(request, name: str, *, key=client_ident) -> bool:
    """Whether the rate is used up already, without counting this request (failed logins count only
    when they fail)."""
    usage = get_usage(request, group=f"page:{name}", key=key, rate=page_rate(name), method="POST")
    return usage is not None and usage["count"] >= usage["limit"]
