#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser test (Debian's packages: browsers
# cannot be downloaded at run time here). Installs them when missing (needs root).
set -euo pipefail
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing Chromium (apt-get install chromium chromium-driver)..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
/usr/bin/chromium --version >&2
