#!/usr/bin/env bash
# The whole test suite: unit, integration (real processes, real HTTP), end-to-end (run.py as a subprocess),
# and every benchmark once in quick mode. Called by `make test` and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "no virtualenv at $VENV: run 'make test'" >&2; exit 2; }
exec "$PY" -m pytest -p no:cacheprovider "$@"
