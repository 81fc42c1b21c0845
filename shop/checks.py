"""``manage.py check --deploy`` warnings about a production that runs, but not as it should.

shop.settings.production already refuses to start without the variables it cannot do without (see
there). These are what can be right on one machine and is rarely right in production.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - names, not a bind address
LOCAL_CELERY_TRANSPORTS = {"filesystem", "memory"}


@register(Tags.database, deploy=True)
def check_database_is_not_sqlite(app_configs, **kwargs):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return []
    return [
        Warning(
            "DATABASE_URL points at SQLite.",
            hint="Use PostgreSQL (postgres://user:password@host:5432/db): stock holds rely on its row "
            "locks, and every process (web, worker, beat, email consumer) must share one database.",
            id="shop.W001",
        )
    ]


@register(deploy=True)
def check_celery_broker_is_shared(app_configs, **kwargs):
    scheme = urlsplit(settings.CELERY_BROKER_URL).scheme or settings.CELERY_BROKER_URL.split(":", 1)[0]
    if scheme not in LOCAL_CELERY_TRANSPORTS:
        return []
    return [
        Warning(
            f"CELERY_BROKER_URL uses the {scheme} transport, which only reaches processes on this machine.",
            hint="Use Redis (redis://host:6379/0): without a broker the worker shares, expired holds are "
            "never released and the outbox is never swept.",
            id="shop.W002",
        )
    ]


@register(deploy=True)
def check_site_url_is_public(app_configs, **kwargs):
    host = urlsplit(settings.SITE_URL).hostname
    if host and host not in LOOPBACK_HOSTS:
        return []
    return [
        Warning(
            f"SITE_URL is {settings.SITE_URL}, an address of this machine.",
            hint="Set SITE_URL to the shop's public URL (https://shop.example.com): PayPal sends shoppers "
            "back to it and the emails link to it.",
            id="shop.W003",
        )
    ]


@register(deploy=True)
def check_paypal_is_not_the_simulator(app_configs, **kwargs):
    if settings.PAYPAL_MODE != "simulator":
        return []
    return [
        Warning(
            "PAYPAL_MODE is simulator (allowed by PAYPAL_SIMULATOR_IN_PRODUCTION): no payment is real.",
            hint="For a shop that takes money, set PAYPAL_MODE to sandbox or live with the app's "
            "credentials, and drop PAYPAL_SIMULATOR_IN_PRODUCTION.",
            id="shop.W004",
        )
    ]


@register(Tags.caches, deploy=True)
def check_cache_is_shared(app_configs, **kwargs):
    backend = settings.CACHES["default"]["BACKEND"]
    if not backend.endswith(("LocMemCache", "DummyCache")):
        return []
    return [
        Warning(
            f"The cache is {backend.rsplit('.', 1)[-1]}: each process keeps its own counts.",
            hint="Set CACHE_URL to Redis (redis://host:6379/1): rate limits (API throttling, login attempts) "
            "count in the cache, and with one per process a client gets as many tries per process.",
            id="shop.W005",
        )
    ]
