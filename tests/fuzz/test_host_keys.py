"""Fuzzing PEM values: host keys in ``ssh.hostkeys``, webhook TLS certificates and keys.

Corrupted keys and certificates, in every format the gateway reads, may make
``validate_config`` raise only ``ConfigError`` (naming the key), the host key
loader only ``ContainerSSHError``, and a webhook client's TLS settings only
``TLSConfigError``.
"""

from __future__ import annotations

import base64
import datetime
import textwrap
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID
from hypothesis import example
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import ConfigError, parse_config, validate_config
from conch_container.errors import ContainerSSHError
from conch_container.ssh.hostkeys import load_host_keys
from conch_container.webhook.tls import TLSConfigError, TLSSettings, WebhookTLSPolicy
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import count_known_bug
from tests.fuzz.strategies import mutated_text


def _keys() -> dict[str, str]:
    """One private key (and one public key) in each format the gateway may be given."""
    ed = ed25519.Ed25519PrivateKey.generate()
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    texts = {
        "ed25519-openssh": ed.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()),
        "ed25519-pkcs8": ed.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        "ecdsa-sec1": ecdsa.private_bytes(
            Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
        ),
        "ecdsa-openssh": ecdsa.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()),
        "rsa-pkcs1": small_rsa.private_bytes(
            Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
        ),
        "rsa-openssh": small_rsa.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()),
        "rsa-pkcs8": small_rsa.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        "ed25519-encrypted": ed.private_bytes(
            Encoding.PEM, PrivateFormat.OpenSSH, BestAvailableEncryption(b"secret")
        ),
        "ed25519-public": ed.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        ),
    }
    return {name: text.decode("ascii") for name, text in texts.items()}


def _certificate() -> tuple[str, str]:
    """A self-signed certificate and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook.test")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(Encoding.PEM).decode("ascii"),
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode("ascii"),
    )


KEYS = _keys()
CERTIFICATE, CERTIFICATE_KEY = _certificate()


@st.composite
def corrupted_pem(draw: st.DrawFn, pem: str) -> str:
    """``pem`` with its decoded body cut, extended or with bytes changed, re-encoded as PEM."""
    lines = pem.strip().splitlines()
    header = [line for line in lines[1:-1] if ":" in line]  # encryption headers
    body = bytearray(base64.b64decode("".join(line for line in lines[1:-1] if ":" not in line)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        position = draw(st.integers(0, len(body)))
        if kind == "flip" and body:
            body[min(position, len(body) - 1)] = draw(st.integers(0, 255))
        elif kind == "cut":
            del body[position : position + draw(st.integers(1, 64))]
        elif kind == "insert":
            body[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif body:
            # A length field (SSH and DER lengths are big-endian) made huge or zero.
            end = min(position + 4, len(body))
            body[position:end] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]))[
                : end - position
            ]
    encoded = textwrap.wrap(base64.b64encode(bytes(body)).decode("ascii"), 64)
    return "\n".join([lines[0], *header, *([""] if header else []), *encoded, lines[-1]]) + "\n"


pem_texts = st.sampled_from(sorted(KEYS)).flatmap(
    lambda name: st.one_of(
        corrupted_pem(KEYS[name]),
        mutated_text(KEYS[name], max_mutations=2),
        st.just(KEYS[name]),
    )
)


class HostKeyTests(SynchronousTestCase):
    @fuzz(pem_texts, expect=("accepted", "rejected"))
    @example(KEYS["ed25519-openssh"])
    def test_config(self, pem: str) -> None:
        """A host key in the configuration is accepted or refused with a ConfigError naming it."""
        data = {
            "ssh": {"hostkeys": [pem]},
            "auth": {"password": {"method": "webhook", "webhook": {"url": "http://a:1"}}},
        }
        try:
            validate_config(parse_config(data))
        except ConfigError as error:
            self.assertTrue(error.key_path.startswith("ssh.hostkeys"), str(error))
            note("rejected")
            return
        except Exception as error:
            count_known_bug(error)
            return
        note("accepted")
        # What the configuration accepts, the server can load.
        self.assertEqual(len(load_host_keys([pem])), 1)

    @fuzz(pem_texts, expect=("loaded", "refused"))
    @example(KEYS["rsa-pkcs1"])
    def test_server(self, pem: str) -> None:
        """The server loads a host key or refuses it with SSH_START_FAILED."""
        try:
            loaded = load_host_keys([pem])
        except ContainerSSHError as error:
            self.assertEqual(error.code.code, "SSH_START_FAILED")
            note("refused")
            return
        self.assertEqual(len(loaded), 1)
        note("loaded")


certificates = st.one_of(
    corrupted_pem(CERTIFICATE),
    mutated_text(CERTIFICATE, max_mutations=2),
    st.just(CERTIFICATE),
    st.just(""),
)
certificate_keys = st.one_of(
    corrupted_pem(CERTIFICATE_KEY),
    mutated_text(CERTIFICATE_KEY, max_mutations=2),
    st.sampled_from([CERTIFICATE_KEY, KEYS["rsa-pkcs1"], KEYS["ed25519-openssh"], ""]),
)


@st.composite
def tls_options(draw: st.DrawFn) -> dict[str, str]:
    """Coherent ``cacert``/``cert``/``key`` options, often with one of them corrupted."""
    options = {"cacert": draw(st.sampled_from([CERTIFICATE, ""]))}
    if draw(st.booleans()):
        options.update(cert=CERTIFICATE, key=CERTIFICATE_KEY)
    else:
        options.update(cert="", key="")
    if draw(st.booleans()):
        name = draw(st.sampled_from(["cacert", "cert", "key"]))
        options[name] = draw(certificate_keys if name == "key" else certificates)
    return options


class WebhookTLSTests(SynchronousTestCase):
    @fuzz(
        tls_options()
        | st.fixed_dictionaries(
            {"cacert": certificates, "cert": certificates, "key": certificate_keys}
        ),
        expect=("accepted", "rejected"),
    )
    @example({"cacert": CERTIFICATE, "cert": CERTIFICATE, "key": CERTIFICATE_KEY})
    def test_pem_options(self, options: dict[str, Any]) -> None:
        """``cacert``, ``cert`` and ``key``: a TLS policy or a TLSConfigError naming the option."""
        try:
            WebhookTLSPolicy(TLSSettings(**options))
        except TLSConfigError as error:
            self.assertRegex(str(error), r"^(cacert|cert|key): ")
            note("rejected")
            return
        note("accepted")


class RegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found: each must be a ConfigError."""

    def assertRejected(self, pem: str) -> None:
        data = {
            "ssh": {"hostkeys": [pem]},
            "auth": {"password": {"method": "webhook", "webhook": {"url": "http://a:1"}}},
        }
        with self.assertRaises(ConfigError) as raised:
            validate_config(parse_config(data))
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[0]")

    def test_truncated_openssh_key(self) -> None:
        """An OpenSSH key whose private part is cut short is not a valid key."""
        blob = (
            b"openssh-key-v1\x00"
            + b"\x00\x00\x00\x04none" * 2
            + b"\x00\x00\x00\x00"
            + b"\x00\x00\x00\x01"
            + b"\x00\x00\x00\x00"
            + b"\x00\x00\x00\x17"
            + b"\x00\x00\x00\x01\x00\x00\x00\x01"
            + b"\x00\x00\x00\x07ssh-rsa"
        )
        body = "\n".join(textwrap.wrap(base64.b64encode(blob).decode("ascii"), 64))
        self.assertRejected(
            f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
        )

    def test_unsupported_curve(self) -> None:
        """A SEC1 key on a curve the crypto library does not support is not a valid key."""
        der = bytearray(base64.b64decode("".join(KEYS["ecdsa-sec1"].strip().splitlines()[1:-1])))
        oid = bytes.fromhex("2a8648ce3d030107")  # prime256v1
        position = der.index(oid)
        der[position : position + len(oid)] = bytes.fromhex("2a8648ce3d030108")
        body = "\n".join(textwrap.wrap(base64.b64encode(bytes(der)).decode("ascii"), 64))
        self.assertRejected(
            f"-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n"
        )


def _der(pem: str) -> bytearray:
    return bytearray(base64.b64decode("".join(pem.strip().splitlines()[1:-1])))


def _pem(der: bytes, label: str) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


class TLSRegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found: each must be a TLSConfigError."""

    def assertRejected(self, option: str, **options: str) -> None:
        with self.assertRaises(TLSConfigError) as raised:
            WebhookTLSPolicy(TLSSettings(**options))
        self.assertTrue(str(raised.exception).startswith(f"{option}: "), str(raised.exception))

    def test_certificate_name_not_utf8(self) -> None:
        """A CA certificate whose subject is not valid UTF-8 is refused as ``cacert``."""
        der = _der(CERTIFICATE)
        position = der.rindex(b"webhook.test")
        der[position] = 0xFF
        self.assertRejected("cacert", cacert=_pem(bytes(der), "CERTIFICATE"))

    def test_certificate_key_not_on_curve(self) -> None:
        """A client certificate whose public key is no point of its curve is refused as ``cert``."""
        der = _der(CERTIFICATE)
        position = der.index(bytes.fromhex("034200")) + 4  # the point after 0x04
        der[position] ^= 0x01
        self.assertRejected("cert", cert=_pem(bytes(der), "CERTIFICATE"), key=CERTIFICATE_KEY)

    def test_key_of_unknown_algorithm(self) -> None:
        """A private key of an algorithm the crypto library does not know is refused as ``key``."""
        der = _der(CERTIFICATE_KEY)
        oid = bytes.fromhex("2a8648ce3d0201")  # id-ecPublicKey
        position = der.index(oid)
        der[position : position + len(oid)] = bytes.fromhex("2a8648ce3d0209")
        self.assertRejected("key", cert=CERTIFICATE, key=_pem(bytes(der), "PRIVATE KEY"))
