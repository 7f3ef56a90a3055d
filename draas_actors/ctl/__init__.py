"""draasctl: the control plane's command-line client. It talks to the HTTP API only (import-linter holds it to
that: it imports neither the actors, the system nor the API's server side)."""

from __future__ import annotations

from . import config, history, instances, watch, webhooks  # noqa: F401  (they add their commands to the group)
from .app import cli


def main() -> None:
    # prog_name fixed, so `python -m draas_actors.ctl` reads the same completion variable: _DRAASCTL_COMPLETE.
    cli.main(prog_name="draasctl")
