"""The test suite: always PostgreSQL, fast password hashing, nothing read from a developer's .env."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/shop"),
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise RuntimeError("The test suite runs on PostgreSQL only: set DATABASE_URL to a postgres:// URL.")
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default=None)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
# Throttling is on, with rates no test reaches by accident; the tests of the limits set their own.
API_THROTTLE_RATES = {
    "anon": "100000/minute",
    "user": "100000/minute",
    "auth": "100000/minute",
    "order_placement": "100000/minute",
}
PAGE_THROTTLE_RATES = {
    "login": "10000/m",
    "login_username": "10000/m",
    "signup": "10000/m",
    "password_reset": "10000/m",
}
ORDER_MAX_PENDING_PER_USER = 1000
