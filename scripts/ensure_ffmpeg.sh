#!/usr/bin/env bash
# Makes sure ffmpeg and ffprobe are on PATH: installs Debian's package when we are root,
# otherwise says what to install. The imageio-ffmpeg wheel is no substitute: it ships no ffprobe.
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing ffmpeg (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  command -v ffprobe >/dev/null 2>&1 && exit 0
fi
echo "error: ffmpeg and ffprobe are required; install them (e.g. 'sudo apt-get install ffmpeg') and rerun." >&2
exit 1
