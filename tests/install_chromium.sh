#!/usr/bin/env bash
# Install Debian's chromium for the headless-browser tests (tests/test_report.py), only when missing, and
# Debian's openssh-server for the SSH-tunnel round trip (tests/test_jupyter_roundtrip.py).
# Playwright drives this executable; it never downloads its own browsers.
set -euo pipefail
CHROMIUM=${MLOPS_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ] && [ -x /usr/sbin/sshd ]; then echo "[chromium] $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"; exit 0; fi
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core openssh-server openssh-client >/dev/null
echo "[chromium] installed $("$CHROMIUM" --version)"
