#!/usr/bin/env bash
# Usage: ensure_debian.sh "COMMANDS" "PACKAGES" "WHY"
# Makes sure every command in COMMANDS is on PATH: installs Debian's PACKAGES when we are root, otherwise says what
# to install (and exits 1; WHY says what needs them).
set -euo pipefail
commands=$1 packages=$2 why=$3
missing() { for c in $commands; do command -v "$c" >/dev/null 2>&1 || return 0; done; return 1; }
missing || exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing $packages (Debian packages, $why)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
  missing || exit 0
fi
echo "error: $why needs $commands; install them (e.g. 'sudo apt-get install $packages') and rerun." >&2
exit 1
