"""The identity on ``req.context.identity``; defined with the rest of the security data in ``security.py``."""

from __future__ import annotations

from ..security import ADMIN, DAEMON, OPERATE, OPERATOR, PUSH, READ, Identity

__all__ = ["ADMIN", "DAEMON", "OPERATE", "OPERATOR", "PUSH", "READ", "Identity"]
