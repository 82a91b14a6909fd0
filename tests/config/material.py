"""Key material and files the config tests use."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> str:
    """The path of a fixture file."""
    return os.path.join(FIXTURES, name)


def ed25519_pem() -> str:
    """A new Ed25519 private key, OpenSSH format."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def ecdsa_pem() -> str:
    """A new plain ECDSA P-256 private key, PEM (SEC1) format."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
    ).decode()


def rsa_pem(bits: int = 2048) -> str:
    """A new RSA private key, PKCS#1 PEM ("RSA PRIVATE KEY"), as ContainerSSH writes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
    ).decode()


def encrypted_pem() -> str:
    """An Ed25519 private key protected by a passphrase."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, BestAvailableEncryption(b"secret")
    ).decode()


def public_pem() -> str:
    """An Ed25519 public key in PEM form."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def write(directory: str, name: str, text: str, mode: int = 0o644) -> str:
    """Write ``text`` to ``directory/name`` and return the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, mode)
    return path
