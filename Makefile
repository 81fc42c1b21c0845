# The two commands of the README: `make run` (the whole shop locally) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install services browser lint check-django pytest bench lock clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## run: install, migrate, seed the demo and start every process of the shop (Ctrl-C stops them all).
run: install
	$(BIN)/python -m shop.localrun

## test: install, make sure PostgreSQL, Redis and Chromium are there, then lint, check and run pytest.
test: install services browser lint check-django pytest

services:
	bash scripts/ensure_services.sh

browser:
	bash scripts/ensure_chromium.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check-django:
	DJANGO_SETTINGS_MODULE=shop.settings.test $(BIN)/python manage.py check
	DJANGO_SETTINGS_MODULE=shop.settings.test $(BIN)/python manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=shop.settings.test $(BIN)/python manage.py compilemessages --ignore=.venv -v 0

pytest:
	$(BIN)/python -m pytest

## lock: resolve requirements.txt into requirements.lock: every transitive dependency pinned, with the hashes of
## all its files, for Python 3.11 (the image's) on any platform. The Dockerfile installs from it with --require-hashes.
lock: install
	$(BIN)/uv pip compile requirements.txt --generate-hashes --universal --python-version 3.11 \
		--custom-compile-command "make lock" --quiet -o requirements.lock

## bench: issue 15's table, ours / baseline / ratio / goal, on a throw-away database (make bench ARGS=--quick).
bench: install services
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
