"""The static users file: parsing and strict validation, and making password hashes.

The format (a conch-container extension)::

    users:
      demo:
        passwordHash: "$2b$12$..."          # bcrypt
        authorizedKeys:                     # optional; authorized_keys lines
          - ssh-ed25519 AAAA... comment
        environment: {FOO: bar}             # optional; becomes the session environment
        metadata: {team: ops}               # optional

Environment and metadata values are strings, or ``{value: ..., sensitive: true}``.
Every error names the file and the key path of the problem.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import attrs
import bcrypt
import yaml

from conch_container.metadata import MetadataValue

#: bcrypt reads at most this many bytes of a password.
BCRYPT_MAX_PASSWORD = 72
DEFAULT_ROUNDS = 12

_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_KEY_TYPE = re.compile(r"^(ssh-|ecdsa-sha2-|sk-ssh-|sk-ecdsa-sha2-)[a-z0-9@.-]+$")


class StaticUsersError(ValueError):
    """The users file is unreadable or invalid; the message names the file and key path."""

    def __init__(self, path: str, key: str, message: str) -> None:
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")
        self.path = path
        self.key = key


@attrs.frozen
class StaticUser:
    """One user of the users file.

    :ivar password_hash: the bcrypt hash, or ``None`` when the user has no password.
    :ivar authorized_keys: the key blobs (wire format) the user may log in with.
    """

    name: str
    password_hash: bytes | None = None
    authorized_keys: frozenset[bytes] = frozenset()
    environment: Mapping[str, MetadataValue] = attrs.field(factory=dict)
    metadata: Mapping[str, MetadataValue] = attrs.field(factory=dict)


# ---------------------------------------------------------------------------
# Parsing


def _split_options(line: str) -> tuple[str, str]:
    """Split an authorized_keys line at the first whitespace outside double quotes."""
    quoted = False
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            return line[:i], line[i:].strip()
    return line, ""


def parse_public_key(line: str) -> bytes:
    """The key blob of an authorized_keys line (``[options] type base64 [comment]``).

    :raises ValueError: when the line holds no well-formed key.
    """
    text = line.strip()
    first, rest = _split_options(text)
    if not _KEY_TYPE.match(first):
        text = rest  # the first field was the options
    fields = text.split()
    if len(fields) < 2 or not _KEY_TYPE.match(fields[0]):
        raise ValueError("not an authorized_keys line (expected: [options] type base64 [comment])")
    key_type, encoded = fields[0], fields[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not valid base64") from None
    # The blob starts with its own type as an SSH string; a mismatch is a paste error.
    length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4 : 4 + length].decode("ascii", "replace") != key_type:
        raise ValueError(f"the key data does not hold a {key_type} key")
    return blob


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _values(path: str, key: str, raw: Any) -> dict[str, MetadataValue]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StaticUsersError(path, key, "must be a mapping of names to strings")
    result = {}
    for name, value in raw.items():
        where = f"{key}.{name}"
        if not isinstance(name, str) or not name:
            raise StaticUsersError(path, where, "names must be non-empty strings")
        if isinstance(value, str):
            result[name] = MetadataValue(value)
        elif isinstance(value, dict):
            unknown = set(value) - {"value", "sensitive"}
            if unknown:
                raise StaticUsersError(path, where, f"unknown key {sorted(map(str, unknown))[0]}")
            if not isinstance(value.get("value"), str):
                raise StaticUsersError(path, f"{where}.value", "must be a string")
            sensitive = value.get("sensitive", False)
            if not isinstance(sensitive, bool):
                raise StaticUsersError(path, f"{where}.sensitive", "must be true or false")
            result[name] = MetadataValue(value["value"], sensitive)
        else:
            raise StaticUsersError(
                path, where, "must be a string (quote numbers and booleans) or {value, sensitive}"
            )
    return result


def _user(path: str, name: Any, raw: Any) -> StaticUser:
    where = f"users.{name}"
    if not isinstance(name, str) or not name:
        raise StaticUsersError(path, where, "user names must be non-empty strings")
    if not isinstance(raw, dict):
        raise StaticUsersError(path, where, "must be a mapping")
    unknown = set(raw) - {"passwordHash", "authorizedKeys", "environment", "metadata"}
    if unknown:
        raise StaticUsersError(path, f"{where}.{sorted(map(str, unknown))[0]}", "unknown key")

    password_hash = raw.get("passwordHash")
    if password_hash is not None:
        if not isinstance(password_hash, str) or not _BCRYPT_HASH.match(password_hash):
            raise StaticUsersError(
                path,
                f"{where}.passwordHash",
                "not a bcrypt hash ($2b$...); make one with: conch-container hash-password",
            )
        password_hash = password_hash.encode("ascii")

    keys_raw = raw.get("authorizedKeys") or []
    if not isinstance(keys_raw, list):
        raise StaticUsersError(path, f"{where}.authorizedKeys", "must be a list of keys")
    keys = set()
    for i, line in enumerate(keys_raw):
        if not isinstance(line, str):
            raise StaticUsersError(path, f"{where}.authorizedKeys[{i}]", "must be a string")
        try:
            keys.add(parse_public_key(line))
        except ValueError as e:
            raise StaticUsersError(path, f"{where}.authorizedKeys[{i}]", str(e)) from None

    if password_hash is None and not keys:
        raise StaticUsersError(path, where, "needs a passwordHash or authorizedKeys")
    return StaticUser(
        name=name,
        password_hash=password_hash,
        authorized_keys=frozenset(keys),
        environment=_values(path, f"{where}.environment", raw.get("environment")),
        metadata=_values(path, f"{where}.metadata", raw.get("metadata")),
    )


def parse_users(text: str, path: str = "<users>") -> dict[str, StaticUser]:
    """Parse users-file YAML text.

    :raises StaticUsersError: naming ``path`` and the key path of the problem.
    """
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise StaticUsersError(path, "", f"invalid YAML: {e}") from None
    if not isinstance(document, dict):
        raise StaticUsersError(path, "", "must be a mapping with a 'users' key")
    unknown = set(document) - {"users"}
    if unknown:
        raise StaticUsersError(path, str(sorted(map(str, unknown))[0]), "unknown key")
    users = document.get("users")
    if users is None:
        raise StaticUsersError(path, "users", "missing")
    if not isinstance(users, dict):
        raise StaticUsersError(path, "users", "must be a mapping of user names to users")
    return {name: _user(path, name, raw) for name, raw in users.items()}


def load_users(path: str) -> dict[str, StaticUser]:
    """Read and parse a users file.

    :raises StaticUsersError: when it cannot be read or is invalid.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise StaticUsersError(path, "", f"cannot read the users file: {reason}") from None
    return parse_users(text, path)


def hash_password(password: str | bytes, rounds: int = DEFAULT_ROUNDS) -> str:
    """A bcrypt hash for a users file's ``passwordHash``.

    :raises ValueError: for an empty password, or one longer than bcrypt can use.
    """
    raw = password.encode("utf-8") if isinstance(password, str) else password
    if not raw:
        raise ValueError("the password is empty")
    if len(raw) > BCRYPT_MAX_PASSWORD:
        raise ValueError(f"bcrypt uses at most {BCRYPT_MAX_PASSWORD} bytes of a password")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode("ascii")
