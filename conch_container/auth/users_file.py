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

from conch_container.config.yamlio import yaml_error_problem
from conch_container.envnames import loggable_name, variable_problem
from conch_container.metadata import MetadataValue
from conch_container.shape import MAX_DEPTH, ShapeError, check_shape

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


def _construct_mapping(loader: _StrictLoader, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.MappingNode):
        # ``!!map [a]`` or ``!!map x``: PyYAML's own method reports it, with its position.
        return loader.construct_mapping(node)  # type: ignore[arg-type]
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            # A complex key (``? [a]``) is a list; report it as PyYAML would, had
            # the duplicate check not looked it up first.
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found unhashable key",
                key_node.start_mark,
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_values(path: str, key: str, raw: Any) -> dict[str, MetadataValue]:
    """A map of names to strings or ``{value, sensitive}`` found at ``key``.

    :raises StaticUsersError: naming the key path of the first bad entry.
    """
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


#: The keys of one user in the static users file.
USER_KEYS = frozenset({"passwordHash", "authorizedKeys", "environment", "metadata"})


def parse_user(
    path: str, name: Any, raw: Any, *, extra_keys: frozenset[str] = frozenset()
) -> StaticUser:
    """One user of the ``users`` mapping.

    :param extra_keys: keys a format built on this one adds; they are let
        through unread, for its own parser to read.
    :raises StaticUsersError: naming ``path`` and the key path of the problem.
    """
    where = f"users.{name}"
    if not isinstance(name, str) or not name:
        raise StaticUsersError(path, where, "user names must be non-empty strings")
    if not isinstance(raw, dict):
        raise StaticUsersError(path, where, "must be a mapping")
    unknown = set(raw) - USER_KEYS - extra_keys
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
    environment = parse_values(path, f"{where}.environment", raw.get("environment"))
    for variable, entry in environment.items():
        why = variable_problem(variable, entry.value)
        if why is not None:
            raise StaticUsersError(path, f"{where}.environment.{loggable_name(variable)}", why)
    return StaticUser(
        name=name,
        password_hash=password_hash,
        authorized_keys=frozenset(keys),
        environment=environment,
        metadata=parse_values(path, f"{where}.metadata", raw.get("metadata")),
    )


def _unfit_value_problem(error: Exception) -> str:
    """A description of a value PyYAML could not construct (see :func:`_load_yaml`)."""
    # Only these messages help an operator ("day is out of range for month",
    # "could not convert string to float: 'x'"); an IndexError or
    # AttributeError would name PyYAML's internals.
    if isinstance(error, (ValueError, OverflowError)):
        return f"invalid YAML: a value does not fit its type ({error})"
    return "invalid YAML: a value does not fit its type"


def _load_yaml(text: str, path: str) -> Any:
    """The document in ``text``, of a shape every later walk of it can handle.

    :raises StaticUsersError: for anything malformed, never another exception.
    """
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
        # Inside the ``try``: the key paths it builds call ``str()`` on every
        # key, which refuses a 0x integer too long to print (ValueError below).
        check_shape(document)
    except yaml.YAMLError as e:
        raise StaticUsersError(path, "", yaml_error_problem(e)) from None
    except ShapeError as e:
        raise StaticUsersError(path, e.path, e.problem) from None
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as e:
        # PyYAML reports syntax errors, and a few bad values (``!!binary``
        # garbage, ``!!set [1]``), as YAMLError. For other explicitly tagged
        # scalars that are not what their tag says its constructors raise
        # plain Python errors: ``!!int x`` and ``!!float x`` ValueError (and
        # IndexError when empty), ``!!bool maybe`` KeyError, ``!!timestamp x``
        # AttributeError, and an impossible date (``2001-02-30``, read as a
        # timestamp even untagged, as YAML 1.1 does) ValueError. int() refuses
        # more than 4300 decimal digits (ValueError), and the scanner's chr()
        # a ``\U`` escape beyond Unicode (ValueError or OverflowError).
        # TypeError stands for any other operation on a value of the wrong
        # type. None of them carries a position.
        raise StaticUsersError(path, "", _unfit_value_problem(e)) from None
    except RecursionError:
        # The composer and constructor recurse once per nesting level.
        raise StaticUsersError(
            path, "", f"invalid YAML: nested more than {MAX_DEPTH} levels deep"
        ) from None
    return document


def users_section(text: str, path: str = "<users>") -> dict[Any, Any]:
    """The raw ``users`` mapping of users-file YAML text, each user not yet read.

    :raises StaticUsersError: naming ``path`` and the key path of the problem.
    """
    document = _load_yaml(text, path)
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
    return users


def parse_users(text: str, path: str = "<users>") -> dict[str, StaticUser]:
    """Parse users-file YAML text.

    :raises StaticUsersError: naming ``path`` and the key path of the problem.
    """
    return {name: parse_user(path, name, raw) for name, raw in users_section(text, path).items()}


def load_users(path: str) -> dict[str, StaticUser]:
    """Read and parse a users file.

    :raises StaticUsersError: when it cannot be read or is invalid.
    """
    return parse_users(read_users_text(path), path)


def read_users_text(path: str) -> str:
    """The text of a users file.

    :raises StaticUsersError: when it cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise StaticUsersError(path, "", f"cannot read the users file: {reason}") from None
    return text


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
