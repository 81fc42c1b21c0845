"""Production: every secret and every connection comes from the environment (or .env).

Nothing falls back to base's defaults for one machine: a deployment that lacks a variable it needs
refuses to start with one ``ImproperlyConfigured`` naming every missing or wrong variable, rather than
run against the PayPal simulator, without Kafka (no outcome email would ever leave) or with the local
mail sink's address. What may be right but usually is not (SQLite, the filesystem Celery transport,
a SITE_URL on this machine) is a warning of ``manage.py check --deploy`` (shop/checks.py).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

PAYPAL_MODES = ("sandbox", "live")
SIMULATOR_OPT_IN = "PAYPAL_SIMULATOR_IN_PRODUCTION"


def _configuration_problems() -> list[str]:
    def missing(name: str) -> bool:
        return not env.str(name, default="").strip()

    required = {
        "DJANGO_SECRET_KEY": "a long random string (see .env.example for one way to make it)",
        "DJANGO_ALLOWED_HOSTS": "the host names the shop answers to, e.g. shop.example.com",
        "DATABASE_URL": "the PostgreSQL database, e.g. postgres://shop:password@db:5432/shop",
        "KAFKA_BOOTSTRAP_SERVERS": "the Kafka brokers that carry the outcome emails, e.g. kafka:9092",
        "EMAIL_URL": "the SMTP server that sends them, e.g. smtp+tls://user:password@relay:587",
    }
    problems = [f"{name} is not set: {what}." for name, what in required.items() if missing(name)]

    mode = env.str("PAYPAL_MODE", default="").strip()
    simulator_allowed = env.bool("PAYPAL_SIMULATOR_IN_PRODUCTION", default=False)
    if mode == "simulator":
        if not simulator_allowed:
            problems.append(
                f"PAYPAL_MODE=simulator takes no money: set it to {' or '.join(PAYPAL_MODES)}, or set "
                f"{SIMULATOR_OPT_IN}=true for a demo against the PayPal simulator."
            )
    elif mode not in PAYPAL_MODES:
        got = f"is {mode!r}" if mode else "is not set"
        problems.append(
            f"PAYPAL_MODE {got}: set it to {' or '.join(PAYPAL_MODES)} "
            f"(or to simulator with {SIMULATOR_OPT_IN}=true for a demo)."
        )
    if mode != "simulator":
        problems += [
            f"{name} is not set: the PayPal app's {what}."
            for name, what in (
                ("PAYPAL_CLIENT_ID", "client id"),
                ("PAYPAL_CLIENT_SECRET", "secret"),
                ("PAYPAL_WEBHOOK_ID", "webhook id (of https://<your host>/payments/paypal/webhook/)"),
            )
            if missing(name)
        ]
    return problems


_problems = _configuration_problems()
if _problems:
    raise ImproperlyConfigured(
        "shop.settings.production cannot start:\n"
        + "\n".join(f"  - {problem}" for problem in _problems)
        + "\nSee .env.example and the README's Configuration table."
    )

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# Each web process serves GUNICORN_THREADS requests at once (gunicorn.conf.py: by default the pool,
# its queue and 4 more) and each thread keeps a database connection: a short queue keeps both the
# 503 "busy" answer reachable and the connections per process bounded.
ORDER_QUEUE_SIZE = env.int("ORDER_QUEUE_SIZE", default=10)

# /metrics answers only when asked for (and then to METRICS_ALLOWED_IPS only).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
