#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (Playwright cannot download browsers here).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure_chromium: install Chromium (e.g. 'sudo apt-get install chromium') for the browser tests" >&2
  exit 1
fi
