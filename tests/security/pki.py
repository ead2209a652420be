"""Certificates for the TLS tests, made with `cryptography`: a CA, a server certificate for
127.0.0.1 and localhost, a client certificate from the same CA, and a client certificate
from a CA nobody trusts. EC P-256 keys: quick to make."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sllm.settings import TlsClientSettings, TlsSettings


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Identity
    client: Identity
    # Signed by a CA the servers do not trust.
    stranger: Identity

    def server_tls(self, *, mutual: bool = False) -> TlsSettings:
        return TlsSettings(
            cert_file=self.server.cert,
            key_file=self.server.key,
            client_ca_file=self.ca if mutual else None,
        )

    def client_tls(self, identity: Identity | None = None) -> TlsClientSettings:
        """Trusts the CA; presents `identity` when given."""
        return TlsClientSettings(
            ca_file=self.ca,
            cert_file=identity.cert if identity else None,
            key_file=identity.key if identity else None,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Identity:
    identity = Identity(directory / f"{stem}.crt", directory / f"{stem}.key")
    identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    identity.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return identity


def _builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _ca(
    directory: Path, name: str
) -> tuple[Identity, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write(directory, name, cert, key), cert, key


def _leaf(
    directory: Path,
    stem: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
) -> Identity:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(stem, ca_cert.subject.rfc4514_string().removeprefix("CN="), key)
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


def make_pki(directory: Path) -> Pki:
    ca, ca_cert, ca_key = _ca(directory, "sllm-test-ca")
    _, other_cert, other_key = _ca(directory, "stranger-ca")
    return Pki(
        ca=ca.cert,
        server=_leaf(directory, "server", (ca_cert, ca_key), ExtendedKeyUsageOID.SERVER_AUTH),
        client=_leaf(directory, "client", (ca_cert, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH),
        stranger=_leaf(
            directory, "stranger", (other_cert, other_key), ExtendedKeyUsageOID.CLIENT_AUTH
        ),
    )
