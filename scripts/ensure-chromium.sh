#!/usr/bin/env bash
# Make Debian's Chromium available for the dashboard's browser tests (tests/integration/test_dashboard_browser.py).
#
# - installs the chromium package when /usr/bin/chromium is missing (needs root, as on these machines; apt,
#   non-interactive). Playwright (the Python package) drives it; Playwright's own browser download is never used;
# - checks that it starts headless and prints its version.
# Prints one line on success. On failure it prints why and exits 3; scripts/test.sh then fails the run under
# CI=true, or exports DRAAS_CHROMIUM_UNAVAILABLE so that the browser tests are skipped with the reason.
set -uo pipefail
DIR=${DRAAS_CHROMIUM_DIR:-/tmp/draas-chromium}
CHROMIUM=${DRAAS_CHROMIUM:-/usr/bin/chromium}
mkdir -p "$DIR"

fail() {
  echo "ensure-chromium: $*" >&2
  exit 3
}

if [ ! -x "$CHROMIUM" ]; then
  [ "$(id -u)" = 0 ] || fail "$CHROMIUM is not installed and we are not root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$DIR/apt.log" 2>&1 || fail "apt-get update failed (see $DIR/apt.log)"
  apt-get install -y -qq --no-install-recommends chromium >>"$DIR/apt.log" 2>&1 \
    || fail "apt-get install chromium failed (see $DIR/apt.log)"
fi
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is still missing after installing chromium"
version=$(timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --version 2>/dev/null) \
  || fail "$CHROMIUM does not start"
echo "ensure-chromium: $version at $CHROMIUM"
