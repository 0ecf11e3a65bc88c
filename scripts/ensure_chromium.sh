#!/usr/bin/env bash
# Makes sure a headless browser for the app's test is on PATH: Debian's chromium and chromium-driver (a browser
# that downloads itself at install time is not an option offline). Installs them when we are root, otherwise
# says what to install; the test then fails with the same hint.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing chromium and chromium-driver (Debian packages, for the app's browser test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  command -v chromedriver >/dev/null 2>&1 && exit 0
fi
echo "warning: the app's browser test needs chromium and chromedriver (e.g. 'sudo apt-get install chromium chromium-driver')" >&2
