"""Fuzzing the static users file and the ``authorized_keys`` lines in it.

``parse_users`` may raise only ``StaticUsersError`` (naming the file and the
key path); ``parse_public_key`` only ``ValueError``, and reads back the key
blob of every well-formed line.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.auth.users_file import (
    StaticUser,
    StaticUsersError,
    parse_public_key,
    parse_users,
)
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import count_known_bug
from tests.fuzz.strategies import Mutated, mutated_text, mutated_tree, texts

_KEY_LINE = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    .decode("ascii")
)
_KEY_TYPE, _KEY_DATA = _KEY_LINE.split()
_BLOB = base64.b64decode(_KEY_DATA)

bcrypt_hashes = st.from_regex(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}", fullmatch=True)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
variable_values = texts.filter(lambda t: "\x00" not in t)
values = variable_values | st.fixed_dictionaries(
    {"value": variable_values}, optional={"sensitive": st.booleans()}
)
key_lines = st.builds(
    lambda options, comment: f"{options}{_KEY_LINE} {comment}".strip(),
    st.sampled_from(
        ["", 'command="echo hi" ', 'from="10.0.0.0/8",no-pty ', 'environment="A=b c" ']
    ),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
)


@st.composite
def users_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid users file as data."""
    users: dict[str, Any] = {}
    for name in draw(st.lists(texts.filter(bool), min_size=1, max_size=3, unique=True)):
        user: dict[str, Any] = {}
        if draw(st.booleans()):
            user["passwordHash"] = draw(bcrypt_hashes)
        if draw(st.booleans()) or not user:
            user["authorizedKeys"] = draw(st.lists(key_lines, min_size=1, max_size=2))
        if draw(st.booleans()):
            user["environment"] = draw(st.dictionaries(names, values, max_size=2))
        if draw(st.booleans()):
            user["metadata"] = draw(st.dictionaries(texts.filter(bool), values, max_size=2))
        users[name] = user
    return {"users": users}


_KEYS = ("users", "passwordHash", "authorizedKeys", "environment", "metadata", "value", "sensitive")


def render(document: Any) -> str:
    return yaml.dump(document, Dumper=yaml.SafeDumper, allow_unicode=False)


class UsersFileTests(SynchronousTestCase):
    def parse(self, text: str) -> dict[str, StaticUser] | None:
        try:
            users = parse_users(text, "users.yaml")
        except StaticUsersError as error:
            message = str(error)
            self.assertTrue(message.startswith("users.yaml: "), message)
            if "invalid YAML" in message and not error.key:
                note("rejected:yaml")
                return None
            note("past YAML")
            note("rejected:user" if error.key.startswith("users.") else "rejected:document")
            return None
        except Exception as error:
            count_known_bug(error)
            return None
        for name, user in users.items():
            self.assertIsInstance(user, StaticUser)
            self.assertEqual(user.name, name)
            self.assertTrue(user.password_hash or user.authorized_keys)
        note("past YAML")
        note("parsed")
        return users

    @fuzz(users_documents(), expect=("parsed",))
    def test_valid(self, document: dict[str, Any]) -> None:
        """A valid file parses to its users, their keys and their variables."""
        users = self.parse(render(document))
        assert users is not None
        self.assertEqual(set(users), set(document["users"]))
        for name, user in users.items():
            given = document["users"][name]
            self.assertEqual(len(user.authorized_keys), 1 if given.get("authorizedKeys") else 0)
            self.assertEqual(set(user.environment), set(given.get("environment") or {}))

    @fuzz(
        users_documents().flatmap(lambda d: mutated_tree(d, _KEYS, max_depth=150)),
        expect=("rejected:user",),
    )
    def test_mutated(self, mutated: Mutated) -> None:
        """Valid files with parts dropped, retyped, added, nested: only StaticUsersError."""
        self.parse(render(mutated.tree))

    @fuzz(
        users_documents().map(render).flatmap(mutated_text),
        expect=("rejected:yaml", "past YAML"),
    )
    def test_mutated_text(self, text: str) -> None:
        """Valid files with characters and YAML syntax spliced in: only StaticUsersError."""
        self.parse(text)

    @fuzz(st.text(max_size=200), expect=("rejected:document",))
    def test_random_text(self, text: str) -> None:
        """Random text: only StaticUsersError."""
        self.parse(text)


class PublicKeyTests(SynchronousTestCase):
    @fuzz(key_lines, expect=("parsed",))
    def test_valid_lines(self, line: str) -> None:
        """Every well-formed line gives its key blob."""
        self.assertEqual(parse_public_key(line), _BLOB)
        note("parsed")

    @fuzz(
        key_lines
        | st.text(max_size=120)
        | key_lines.flatmap(mutated_text)
        | st.builds(
            lambda blob: f"{_KEY_TYPE} {base64.b64encode(blob).decode()}",
            st.binary(max_size=60),
        ),
        expect=("parsed", "rejected"),
    )
    def test_any_line(self, line: str) -> None:
        """Any line is a key blob or a ValueError; a blob names the line's key type."""
        try:
            blob = parse_public_key(line)
        except ValueError as error:
            self.assertTrue(str(error))
            note("rejected")
            return
        note("parsed")
        length = int.from_bytes(blob[:4], "big")
        self.assertRegex(blob[4 : 4 + length].decode("ascii"), r"^(sk-)?(ssh|ecdsa)-")


class RegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found: each must be a StaticUsersError."""

    def assertRejected(self, text: str) -> None:
        with self.assertRaises(StaticUsersError) as raised:
            parse_users(text, "users.yaml")
        self.assertTrue(str(raised.exception).startswith("users.yaml: "))

    def test_unhashable_key(self) -> None:
        """A YAML complex key (a list) is a YAML error, not a TypeError."""
        self.assertRejected("? [a]\n: 1\n")

    def test_impossible_date(self) -> None:
        """A timestamp that is no date (YAML 1.1 reads ``2001-02-30`` as one) is a YAML error."""
        self.assertRejected("users: 2001-02-30\n")

    def test_huge_integer(self) -> None:
        """An integer too long to convert is a YAML error."""
        self.assertRejected("users: 1" + "0" * 5000 + "\n")

    def test_deep_nesting(self) -> None:
        """A document nested deeper than the YAML constructor recurses is a YAML error."""
        self.assertRejected("users: " + "[" * 3000 + "]" * 3000 + "\n")

    def test_escape_beyond_unicode(self) -> None:
        """A ``\\U`` escape beyond Unicode in a double-quoted string is a YAML error."""
        self.assertRejected('users: "\\U80001000"\n')

    def test_tagged_scalars(self) -> None:
        """A scalar that is not what its tag says is a YAML error."""
        for text in ("users: !!int", "users: !!float x", "users: !!bool maybe", "users: !!set [1]"):
            self.assertRejected(text + "\n")
