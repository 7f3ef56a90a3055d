"""Identities and keys the security tests share: readable fixed keys, credentials from plain keys, and the staff.

The staff is a control plane's people and daemons for the audit and key-leak tests: ada (admin), rita (read),
otto (operate), the daemon ``docker-host-1`` (Docker, instances ``web-*``) and a ``rogue`` daemon, with bodies
limited to ``MAX_BODY`` bytes.
"""

from __future__ import annotations

from draas_actors.model import Platform
from draas_actors.security import (
    ADMIN,
    OPERATE,
    READ,
    AuthSettings,
    Credential,
    Identity,
    LimitSettings,
    SecuritySettings,
    daemon_identity,
    hash_key,
    normalise_subject,
    operator_identity,
)

SUBJECT = "CN=docker-host-1,O=draas"  # the daemon certificate's subject
MAX_BODY = 4096  # the staff's body limit: small, so a test can exceed it
UPDATE = {"instanceId": "web-1", "platform": "docker", "status": "Running", "source": "DockerDaemon"}  # in scope


def fixed_key(name: str) -> str:
    """A key that says whose it is, long enough to be accepted."""
    return f"{name}-key-0123456789abcdef"


def credential(identity: Identity, *keys: str, subjects: tuple[str, ...] = ()) -> Credential:
    """``identity`` behind these plain keys (stored hashed) and certificate subjects (normalised)."""
    return Credential(
        identity=identity,
        key_hashes=tuple(hash_key(key) for key in keys),
        cert_subjects=tuple(normalise_subject(subject) for subject in subjects),
    )


def staff_security(*, admin: str, read: str, operate: str, daemon: str, rogue: str) -> SecuritySettings:
    """The staff (see the module's docstring), each behind the key given for it."""
    return SecuritySettings(
        auth=AuthSettings(
            credentials=(
                credential(operator_identity("ada", ADMIN), admin),
                credential(operator_identity("rita", READ), read),
                credential(operator_identity("otto", OPERATE), operate),
                credential(
                    # Requests as fast as it likes (the audit's flood test sends hundreds of bad pushes a second);
                    # its updates at the default rate.
                    daemon_identity("docker-host-1", platforms=frozenset({Platform.DOCKER}), instances=("web-*",),
                                    request_rate=10_000.0, request_burst=10_000),
                    daemon,
                ),
                # One push, then nothing for 100 s: every push after the first is refused with a 429.
                credential(daemon_identity("rogue", rate=0.01, burst=1), rogue),
            )
        ),
        limits=LimitSettings(max_body_bytes=MAX_BODY),
    )
