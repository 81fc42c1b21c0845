# One image for every role of the shop: web (gunicorn), celery worker, celery beat, the email consumer,
# the migrate step and the PayPal simulator. docker-compose.yml picks the role with `command:`.

# --- build: install the dependencies into a venv, compile translations, collect static files ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# gettext: msgfmt for compilemessages (only needed at build time, not in the final image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# requirements.lock (`make lock`): every dependency, transitive ones too, pinned with its hashes.
COPY requirements.lock .
RUN pip install --require-hashes -r requirements.lock
COPY . .
# The production settings refuse to load without their variables; none of them is used here (nothing
# is connected to), and none of them ends up in the image's environment.
RUN export DJANGO_SETTINGS_MODULE=shop.settings.production \
        DJANGO_SECRET_KEY=build-only-not-a-secret \
        DJANGO_ALLOWED_HOSTS=localhost \
        DATABASE_URL=sqlite:////tmp/build-only.sqlite3 \
        KAFKA_BOOTSTRAP_SERVERS=build-only:9092 \
        EMAIL_URL=smtp://build-only:25 \
        PAYPAL_MODE=sandbox \
        PAYPAL_CLIENT_ID=build-only \
        PAYPAL_CLIENT_SECRET=build-only \
        PAYPAL_WEBHOOK_ID=build-only \
    && if find . -name '*.po' -not -path './.venv/*' | grep -q .; then \
           python manage.py compilemessages --ignore=.venv -v 0; \
       fi \
    && python manage.py collectstatic --noinput -v 0

# --- runtime -------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=shop.settings.production
RUN groupadd --system --gid 10001 shop \
    && useradd --system --uid 10001 --gid shop --home-dir /app --no-create-home shop
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER shop
EXPOSE 8000
# The default command is the web role; docker-compose.yml gives every other role its own probe
# (heartbeat files: python -m shop.probe heartbeat worker | beat | email-consumer).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "shop.probe", "http", "/health/live"]
# gunicorn.conf.py: gthread workers on $PORT (8000); give `docker stop` more than its graceful_timeout.
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
