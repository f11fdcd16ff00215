#!/usr/bin/env bash
# Install everything the test suite needs (system packages only when missing) and run it.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
if ! command -v gst-inspect-1.0 >/dev/null \
    || ! gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 \
    || ! gst-inspect-1.0 rtmpsink >/dev/null 2>&1 \
    || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 \
    || ! gst-inspect-1.0 avenc_aac >/dev/null 2>&1; then
  need+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
         gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
# tests/interop: nginx-rtmp relay, OBS Studio under Xvfb, Chromium (+ hls.js from npm, below)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] && command -v nginx >/dev/null \
  || need+=(nginx libnginx-mod-rtmp)
command -v obs >/dev/null || need+=(obs-studio)
command -v Xvfb >/dev/null || need+=(xvfb)
command -v chromium >/dev/null || need+=(chromium)
# tests/console: the console in Firefox too (WebDriver BiDi)
command -v firefox-esr >/dev/null || command -v firefox >/dev/null || need+=(firefox-esr)
command -v npm >/dev/null || need+=(npm)
# the PostgreSQL metadata store's tests start their own server; the multi-node test puts
# HAProxy in front of its nodes
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v ip >/dev/null || need+=(iproute2)
# tests/deploy: the systemd unit (systemd-analyze verify), Prometheus's config (promtool)
command -v systemd-analyze >/dev/null || need+=(systemd)
# tests/ops: a Prometheus server scraping the service; promtool comes in the same package
{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || need+=(prometheus)
# tests/install: a new virtual environment (Debian splits venv out of python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m tests.interop.hlsjs >/dev/null  # npm install hls.js into a cache dir if missing
exec python3 -m pytest -q -p no:cacheprovider "$@"
