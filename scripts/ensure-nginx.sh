#!/usr/bin/env bash
# Make Debian's nginx binary available for the mTLS integration tests (tests/integration/test_mtls_nginx.py).
#
# - installs nginx-light when no nginx is on the PATH (needs root, as on these machines; apt, non-interactive);
# - never starts, enables or reloads the system service: each test starts its own nginx on a free 127.0.0.1 port
#   with its own prefix, configuration and PID file, and stops it by that PID. While apt installs the package, a
#   policy-rc.d that forbids starting services (only if the machine has none: Debian's container images ship
#   one) keeps the package's scripts from starting nginx on port 80.
# Prints one line on success. On failure it prints why and exits 3; scripts/test.sh then fails the run under
# CI=true, or exports DRAAS_NGINX_UNAVAILABLE so that the nginx tests are skipped with the reason.
set -uo pipefail
DIR=${DRAAS_NGINX_DIR:-/tmp/draas-nginx}
mkdir -p "$DIR"

fail() {
  echo "ensure-nginx: $*" >&2
  exit 3
}

find_nginx() {
  PATH="$PATH:/usr/sbin:/sbin" command -v nginx 2>/dev/null
}

if ! find_nginx >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "nginx is not installed and we are not root"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    # 101 = "action forbidden by policy": invoke-rc.d / deb-systemd-invoke then skip starting the service.
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  cleanup() { [ -n "$made_policy" ] && rm -f "$policy"; }
  trap cleanup EXIT
  apt-get update -qq >"$DIR/apt.log" 2>&1 || fail "apt-get update failed (see $DIR/apt.log)"
  apt-get install -y -qq --no-install-recommends nginx-light >>"$DIR/apt.log" 2>&1 \
    || fail "apt-get install nginx-light failed (see $DIR/apt.log)"
fi

NGINX=$(find_nginx) || fail "nginx is still not on the PATH after installing it"
"$NGINX" -V 2>&1 | grep -q -- '--with-http_ssl_module' || fail "$NGINX was built without the SSL module"
echo "ensure-nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') at $NGINX"
