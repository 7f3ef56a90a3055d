"""A small PKI for the mTLS tests: CAs, a server certificate for 127.0.0.1, client certificates and a CRL.

Keys are P-256 (fast to make, and what nginx and OpenSSL handle everywhere). Every certificate is written as PEM
next to its key; ``TestPki.make`` writes the whole set the nginx tests need into one directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAEMON_SUBJECT = "CN=docker-host-1,O=draas"
OTHER_DAEMON_SUBJECT = "CN=other-host,O=draas"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, in memory and on disk."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def subject(self) -> str:
        """The subject in RFC 4514/2253 form, as nginx's ``$ssl_client_s_dn`` writes it."""
        return self.certificate.subject.rfc4514_string()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def name(cn: str, org: str = "draas") -> x509.Name:
    # Most significant first in the certificate; RFC 2253 prints it reversed: "CN=<cn>,O=<org>".
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Issued(certificate, key, cert_path, key_path)


def make_ca(directory: Path, stem: str, common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name(common_name)
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, certificate, key)


def issue(
    ca: Issued,
    directory: Path,
    stem: str,
    subject: x509.Name,
    *,
    server_ip: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A leaf certificate signed by ``ca``: a server one (IP SAN ``server_ip``) or, without it, a client one."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_ip else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False
        )
    return _write(directory, stem, builder.sign(ca.key, hashes.SHA256()), key)


def make_crl(ca: Issued, path: Path, revoked: tuple[Issued, ...] = ()) -> Path:
    """A CRL of ``ca`` listing ``revoked``, valid for a day."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=1))
    )
    for certificate in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.certificate.serial_number)
            .revocation_date(now - dt.timedelta(minutes=1))
            .build()
        )
    path.write_bytes(builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


@dataclass(frozen=True)
class TestPki:
    """Everything the nginx tests use; ``ca`` signs the server certificate and the daemons' certificates."""

    __test__ = False  # not a test class, whatever its name says

    ca: Issued
    server: Issued
    good: Issued  # CN=docker-host-1,O=draas
    other_identity: Issued  # CN=other-host,O=draas: a second configured daemon
    unknown: Issued  # valid, but no identity lists its subject
    other_ca: Issued  # a CA nginx does not trust ...
    foreign: Issued  # ... and a client certificate it signed, with the good subject
    expired: Issued  # good subject, good CA, expired yesterday
    revoked: Issued  # good subject, good CA, on the CRL
    crl_path: Path

    @classmethod
    def make(cls, directory: Path) -> TestPki:
        ca = make_ca(directory, "daemons-ca", "draas test CA")
        other_ca = make_ca(directory, "other-ca", "some other CA")
        now = _now()
        good_name = name("docker-host-1")
        revoked = issue(ca, directory, "revoked", good_name)
        pki = cls(
            ca=ca,
            server=issue(ca, directory, "server", name("127.0.0.1"), server_ip="127.0.0.1"),
            good=issue(ca, directory, "good", good_name),
            other_identity=issue(ca, directory, "other-identity", name("other-host")),
            unknown=issue(ca, directory, "unknown", name("stranger")),
            other_ca=other_ca,
            foreign=issue(other_ca, directory, "foreign", good_name),
            expired=issue(
                ca, directory, "expired", good_name,
                not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1),
            ),
            revoked=revoked,
            crl_path=make_crl(ca, directory / "daemons-ca.crl", (revoked,)),
        )
        assert pki.good.subject == DAEMON_SUBJECT and pki.other_identity.subject == OTHER_DAEMON_SUBJECT
        return pki
