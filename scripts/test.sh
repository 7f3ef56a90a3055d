#!/usr/bin/env bash
# The whole test suite: unit, integration (real processes, real HTTP), end-to-end (run.py as a subprocess),
# the mTLS tests through a real nginx, and every benchmark once in quick mode. Called by `make test` and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "no virtualenv at $VENV: run 'make test'" >&2; exit 2; }
# Static checks first, each failing the run (configured in pyproject.toml and setup.cfg): lint, types, layers.
# DRAAS_SKIP_STATIC_CHECKS=1 skips them for a quick local run of a few tests; CI never sets it.
if [ -z "${DRAAS_SKIP_STATIC_CHECKS:-}" ]; then
  "$PY" -m ruff check --quiet .
  "$PY" -m mypy
  "$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache
fi
# A real Docker Engine for the Docker tests. With CI=true an engine that does not come up fails the run;
# elsewhere the Docker tests are skipped with the reason.
if ! scripts/ensure-docker.sh; then
  [ "${CI:-}" = "true" ] && { echo "CI: the Docker engine is required" >&2; exit 1; }
  export DRAAS_DOCKER_UNAVAILABLE="scripts/ensure-docker.sh failed"
fi
# Debian's nginx for the mTLS tests (each test starts and stops its own); the same rule as for Docker.
if ! scripts/ensure-nginx.sh; then
  [ "${CI:-}" = "true" ] && { echo "CI: nginx is required" >&2; exit 1; }
  export DRAAS_NGINX_UNAVAILABLE="scripts/ensure-nginx.sh failed"
fi
# Debian's Chromium for the dashboard's browser tests (driven by Playwright); the same rule again.
if ! scripts/ensure-chromium.sh; then
  [ "${CI:-}" = "true" ] && { echo "CI: Chromium is required for the browser tests" >&2; exit 1; }
  export DRAAS_CHROMIUM_UNAVAILABLE="scripts/ensure-chromium.sh failed"
fi
export DRAAS_DOCKERD_PIDFILE=${DRAAS_DOCKERD_DIR:-/tmp/draas-dockerd}/dockerd.pid
exec "$PY" -m pytest -p no:cacheprovider "$@"
