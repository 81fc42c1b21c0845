"""Settings shared by every environment, read through django-environ.

Every variable of the contract (README, "Configuration") is optional and has an embedded default
that runs the shop on one machine with nothing else installed.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core import heartbeat, logs

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def at_least(minimum: int, name: str, value: int) -> int:
    """``value`` of the variable ``name``, which makes no sense below ``minimum``: refused at start-up."""
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be a whole number of at least {minimum}, not {value}.")
    return value


SECRET_KEY = env("DJANGO_SECRET_KEY", default="django-insecure-local-only-do-not-use-in-production")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "core",
    "shop",
    "inventory",
    "orders",
    "payments",
    "notifications",
    "checkout",
]

MIDDLEWARE = [
    # First: every request gets its id (X-Request-ID) before anything logs about it (core/logs.py).
    "core.logs.RequestIdMiddleware",
    # Then probes get the process's health, never a redirect, a 400 for the host name or a session.
    "shop.health.HealthCheckMiddleware",
    # GET /metrics for the addresses allowed to read it, before the host check too (core/metrics.py).
    "shop.web_metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart",
            ],
        },
    },
]


def _database_from_env():
    """PostgreSQL whenever DATABASE_URL says so; otherwise a local SQLite file.

    SQLite is configured so that concurrent writers queue on the database lock (BEGIN IMMEDIATE,
    WAL, a busy timeout) instead of failing with "database is locked" halfway through a transaction.
    """
    db = env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'shop.sqlite3'}")
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    db["ATOMIC_REQUESTS"] = False
    return db


DATABASES = {"default": _database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog"
LOGOUT_REDIRECT_URL = "catalog"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("vi", "Tiếng Việt")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["shop.formats"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous caller is told 401 with "WWW-Authenticate: Token".
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON in, JSON out: one parser for every body (core.parsers: depth, encoding and size limits).
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.ShopAutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.AnonThrottle", "core.throttling.UserThrottle"],
    # How many proxies in front of the shop append to X-Forwarded-For; 0: the client is REMOTE_ADDR (a
    # client-sent X-Forwarded-For is never believed).
    "NUM_PROXIES": env.int("TRUSTED_PROXY_COUNT", default=0),
}
# Requests per client address (anon, auth) or per user (user, order_placement); "N/second|minute|hour|day".
API_THROTTLE_RATES = {
    "anon": env("API_THROTTLE_ANON", default="120/minute"),
    "user": env("API_THROTTLE_USER", default="600/minute"),
    "auth": env("API_THROTTLE_AUTH", default="5/minute"),
    "order_placement": env("API_THROTTLE_ORDERS", default="20/minute"),
}
# POSTs per client address on the pages (django-ratelimit), and failed logins per username.
PAGE_THROTTLE_RATES = {
    "login": env("PAGE_THROTTLE_LOGIN", default="10/m"),
    "login_username": env("PAGE_THROTTLE_LOGIN_USERNAME", default="5/15m"),
    "signup": env("PAGE_THROTTLE_SIGNUP", default="5/m"),
    "password_reset": env("PAGE_THROTTLE_PASSWORD_RESET", default="5/h"),
}
# The cache every process shares: throttling counts there (Redis in production, e.g. redis://redis:6379/1).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
SPECTACULAR_SETTINGS = {
    "TITLE": "Shop checkout API",
    "DESCRIPTION": "Products, orders and payments of the checkout.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's pinned files, served as our own static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- The checkout -------------------------------------------------------------------------------
SHOP_CURRENCY = env("SHOP_CURRENCY", default="USD")
RESERVATION_TTL_SECONDS = env.int("RESERVATION_TTL_SECONDS", default=900)
ORDER_WORKERS = env.int("ORDER_WORKERS", default=5)
ORDER_QUEUE_SIZE = env.int("ORDER_QUEUE_SIZE", default=50)
# How long a request waits for its turn in the order pool before it gives up.
ORDER_PLACEMENT_TIMEOUT_SECONDS = env.float("ORDER_PLACEMENT_TIMEOUT_SECONDS", default=30.0)
ORDER_MAX_QUANTITY_PER_LINE = env.int("ORDER_MAX_QUANTITY_PER_LINE", default=100)
ORDER_MAX_LINES = env.int("ORDER_MAX_LINES", default=50)
# Unpaid orders (with a live hold) one shopper may have at once; past it: 429 too_many_pending_orders.
ORDER_MAX_PENDING_PER_USER = env.int("ORDER_MAX_PENDING_PER_USER", default=3)
RESERVATION_SWEEP_BATCH_SIZE = at_least(
    1, "RESERVATION_SWEEP_BATCH_SIZE", env.int("RESERVATION_SWEEP_BATCH_SIZE", default=2000)
)

# --- PayPal ------------------------------------------------------------------------------------
PAYPAL_MODE = env("PAYPAL_MODE", default="simulator")
PAYPAL_SIMULATOR_PORT = env.int("PAYPAL_SIMULATOR_PORT", default=8001)
PAYPAL_API_BASE = env(
    "PAYPAL_API_BASE",
    default={
        "simulator": f"http://127.0.0.1:{PAYPAL_SIMULATOR_PORT}",
        "sandbox": "https://api-m.sandbox.paypal.com",
        "live": "https://api-m.paypal.com",
    }.get(PAYPAL_MODE, ""),
)
PAYPAL_CLIENT_ID = env("PAYPAL_CLIENT_ID", default="simulator-client" if PAYPAL_MODE == "simulator" else "")
PAYPAL_CLIENT_SECRET = env(
    "PAYPAL_CLIENT_SECRET", default="simulator-secret" if PAYPAL_MODE == "simulator" else ""
)
PAYPAL_WEBHOOK_ID = env(
    "PAYPAL_WEBHOOK_ID", default="simulator-webhook" if PAYPAL_MODE == "simulator" else ""
)
# The simulator's links for the shopper's browser (its approve page), when that is not the address it
# listens on: e.g. http://localhost:8001 for a simulator in a container that binds 0.0.0.0.
PAYPAL_SIMULATOR_PUBLIC_URL = env("PAYPAL_SIMULATOR_PUBLIC_URL", default="")
PAYPAL_TIMEOUT_SECONDS = env.float("PAYPAL_TIMEOUT_SECONDS", default=10.0)
# How long after its hold expired an order whose PayPal order cannot be read (PayPal unreachable)
# stays PENDING before the expiry sweep fails it anyway; a capture that lands later is refunded.
PAYPAL_SETTLE_GRACE_SECONDS = env.int("PAYPAL_SETTLE_GRACE_SECONDS", default=3600)
# How many expired orders with a PayPal order the expiry sweep settles at once (one thread and one
# database connection each, for the length of the sweep): each waits on a PayPal round trip.
PAYPAL_SETTLE_CONCURRENCY = at_least(
    1, "PAYPAL_SETTLE_CONCURRENCY", env.int("PAYPAL_SETTLE_CONCURRENCY", default=8)
)

# --- Kafka and email ---------------------------------------------------------------------------
# Unset means "the local runner starts the bundled broker and sets it"; nothing is published until then.
KAFKA_BOOTSTRAP_SERVERS = env("KAFKA_BOOTSTRAP_SERVERS", default="")
KAFKA_EMAIL_TOPIC = env("KAFKA_EMAIL_TOPIC", default="email-notification")
KAFKA_EMAIL_DLQ_TOPIC = env("KAFKA_EMAIL_DLQ_TOPIC", default=f"{KAFKA_EMAIL_TOPIC}.dlq")
KAFKA_EMAIL_CONSUMER_GROUP = env("KAFKA_EMAIL_CONSUMER_GROUP", default="email-sender")
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=10000)
KAFKA_MAX_POLL_INTERVAL_MS = env.int("KAFKA_MAX_POLL_INTERVAL_MS", default=300000)

# Where make run's mail sink saves what it catches (read by the DEBUG-only page /dev/mail/).
LOCAL_MAIL_DIR = VAR_DIR / "mail"
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="smtp://127.0.0.1:1025")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Shop <orders@shop.local>")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=5)
# Outcome emails (notifications): how long the Kafka producer may block on an unreachable broker, the
# backoff of the email consumer between tries of one message, and whether a commit that recorded an
# outcome wakes the outbox relay at once (otherwise only the beat sweep publishes).
KAFKA_PRODUCER_TIMEOUT_MS = env.int("KAFKA_PRODUCER_TIMEOUT_MS", default=5000)
OUTBOX_PUBLISH_ON_COMMIT = env.bool("OUTBOX_PUBLISH_ON_COMMIT", default=True)
OUTBOX_PUBLISH_BATCH_SIZE = env.int("OUTBOX_PUBLISH_BATCH_SIZE", default=100)
EMAIL_RETRY_BACKOFF_SECONDS = env.float("EMAIL_RETRY_BACKOFF_SECONDS", default=1.0)
EMAIL_RETRY_BACKOFF_MAX_SECONDS = env.float("EMAIL_RETRY_BACKOFF_MAX_SECONDS", default=60.0)
# Published outbox events and email delivery records older than this are deleted (beat task).
OUTBOX_RETENTION_DAYS = env.int("OUTBOX_RETENTION_DAYS", default=30)
# A published event with no delivery record after this long is published again (a broker that lost
# acknowledged messages loses no email; the consumer de-duplicates by event id).
EMAIL_RECONCILE_AFTER_SECONDS = env.int("EMAIL_RECONCILE_AFTER_SECONDS", default=900)

# --- Celery ------------------------------------------------------------------------------------
# The default is kombu's filesystem transport: no Redis needed to run the shop locally.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "celery" / "queue"),
        "data_folder_out": str(VAR_DIR / "celery" / "queue"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The database schedule (django-celery-beat), and a heartbeat file on every tick (shop/beat.py).
CELERY_BEAT_SCHEDULER = "shop.beat:HeartbeatScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Operations --------------------------------------------------------------------------------
# Where the celery worker, celery beat and the email consumer touch their liveness files
# (core/heartbeat.py); ``python -m shop.probe heartbeat ROLE`` checks them.
HEARTBEAT_DIR = env("HEARTBEAT_DIR", default=heartbeat.DEFAULT_DIR)

# GET /metrics (Prometheus): whether it is served at all, and to which client addresses (CIDRs). Off
# in production unless set (shop.settings.production). A request that came through a proxy is refused.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_ALLOWED_IPS = env.list(
    "METRICS_ALLOWED_IPS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)

# text: "time level logger [request id] message"; json: one JSON object per line (core/logs.py).
LOG_FORMAT = env("LOG_FORMAT", default="text")
LOGGING = logs.logging_config(log_format=LOG_FORMAT, level=env("LOG_LEVEL", default="INFO"))
