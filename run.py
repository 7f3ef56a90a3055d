#!/usr/bin/env python3
"""Start the draas-actors control plane: ``python run.py [--config PATH] [--host H] [--port N] [--data-dir DIR]``."""

import sys

from draas_actors.cli import main

if __name__ == "__main__":
    sys.exit(main())
