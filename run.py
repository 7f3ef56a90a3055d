#!/usr/bin/env python3
"""Start the draas-actors control plane: ``python run.py [--config PATH] [--host H] [--port N] [--data-dir DIR]``.

``python run.py hash-key`` prints a new API key and the hash to configure for it.
"""

import sys

from draas_actors.cli import main

if __name__ == "__main__":
    sys.exit(main())
