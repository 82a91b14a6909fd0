"""Fuzzing the names operators write: log levels and formats, SSH algorithms, TLS suites and curves.

Each lookup may raise only its documented error: ``ValueError`` for log
levels and formats, ``ContainerSSHError`` (``SSH_START_FAILED``) when no
configured algorithm is implemented, ``TLSConfigError`` for TLS names. And
whatever text the values logged carry (user names, variable names, client
versions), a ``text`` or ``ljson`` log record stays one line.
"""

from __future__ import annotations

import json
from typing import Any, cast

from hypothesis import example
from hypothesis import strategies as st
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.config.ssh import DEFAULT_CIPHERS, DEFAULT_KEX, DEFAULT_MACS
from conch_container.config.tls import DEFAULT_CIPHERS as TLS_CIPHERS
from conch_container.config.tls import DEFAULT_CURVES
from conch_container.errors import ContainerSSHError
from conch_container.log import CodeLogger
from conch_container.log.formats import (
    FORMATS,
    format_ljson,
    format_text,
    line_formatter,
    syslog_formatter,
)
from conch_container.log.records import build_record, event_level
from conch_container.ssh.algorithms import (
    implemented_ciphers,
    implemented_key_exchanges,
    implemented_macs,
    select_algorithms,
)
from conch_container.webhook.tls import (
    TLSConfigError,
    openssl_cipher_names,
    openssl_group_names,
    split_names,
)
from tests.fuzz import fuzz, note
from tests.fuzz.strategies import INTERESTING_STRINGS, json_values, pick, texts

LEVEL_WORDS = [level.label for level in Level] + ["warn", "err", "critical", "emergency"]
blanks = st.text(" \t\n", max_size=2)


@st.composite
def spelled(draw: st.DrawFn, word: str) -> str:
    """``word`` in any mix of cases, with blanks around it."""
    cases = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    mixed = "".join(c.upper() if upper else c for c, upper in zip(word, cases, strict=True))
    return draw(blanks) + mixed + draw(blanks)


levels = st.one_of(
    st.sampled_from(LEVEL_WORDS + [str(n) for n in range(8)]).flatmap(spelled),
    st.integers(-3, 12),
    st.integers(),
    texts,
    pick(INTERESTING_STRINGS),
    json_values,
)


class LogNameTests(SynchronousTestCase):
    @fuzz(levels, expect=("level", "rejected"))
    @example("\u00b2")
    @example("1" * 5000)
    @example(True)
    @example(5.0)
    def test_level(self, value: Any) -> None:
        """Any value is a level (whose label and number parse back to it) or a ValueError."""
        try:
            level = Level.parse(value)
        except ValueError as error:
            self.assertTrue(str(error))
            note("rejected")
            return
        self.assertIsInstance(level, Level)
        self.assertIs(Level.parse(level.label), level)
        self.assertIs(Level.parse(int(level)), level)
        note("level")

    @fuzz(st.sampled_from(FORMATS).flatmap(spelled) | texts, expect=("format", "rejected"))
    @example("ljson")
    @example("text")
    def test_format(self, name: str) -> None:
        """A format name gives both formatters, or a ValueError from both."""
        try:
            line_formatter(name)
        except ValueError:
            self.assertRaises(ValueError, syslog_formatter, name)
            note("rejected")
            return
        syslog_formatter(name)
        note("format")


# Values a client or a webhook controls end up in log fields.
field_values = st.one_of(
    texts, st.text(st.sampled_from("\n\r\t\x00\x1b\x85\u2028ab{}")), json_values
)


class LogLineTests(SynchronousTestCase):
    @fuzz(field_values, field_values, expect=("one line",))
    @example("a\nb", {"k\n": "v\r"})
    @example("{username}", "{0}")
    def test_one_line(self, username: Any, detail: Any) -> None:
        """Whatever the fields hold, ``text`` and ``ljson`` write one line; ``ljson`` reads back."""
        events: list[dict[str, Any]] = []
        log = CodeLogger("tests.fuzz", observer=cast(ILogObserver, events.append))
        log.event(
            messages.SSH_CONNECTED,
            "Connection from {username}",
            username=username,
            detail=detail,
        )
        (event,) = events
        code, level = event_level(event)
        record = build_record(event, code, level)
        for line in (format_text(record), format_ljson(record)):
            self.assertNotIn("\n", line)
            self.assertNotIn("\r", line)
        self.assertEqual(len(format_text(record).split("\t")), 4)
        decoded = json.loads(format_ljson(record))
        self.assertEqual(decoded["code"], messages.SSH_CONNECTED.code)
        self.assertEqual(decoded["details"], json.loads(json.dumps(record.details)))
        note("one line")


_SSH_NAMES = sorted(
    {
        *DEFAULT_CIPHERS,
        *DEFAULT_KEX,
        *DEFAULT_MACS,
        *(name.decode() for name in (*implemented_ciphers(), *implemented_key_exchanges())),
        *(name.decode() for name in implemented_macs()),
    }
)
ssh_names = st.lists(st.sampled_from(_SSH_NAMES), max_size=6) | st.lists(
    st.sampled_from(_SSH_NAMES) | texts, max_size=6
)


class AlgorithmTests(SynchronousTestCase):
    @fuzz(ssh_names, ssh_names, ssh_names, expect=("offered", "refused"))
    def test_select(self, ciphers: list[str], kex: list[str], macs: list[str]) -> None:
        """The offer keeps the configured order of what is implemented; none usable is an error."""
        try:
            offer = select_algorithms(ciphers, kex, macs)
        except ContainerSSHError as error:
            self.assertEqual(error.code, messages.SSH_START_FAILED)
            note("refused")
            return
        for offered, configured, default, implemented in (
            (offer.ciphers, ciphers, DEFAULT_CIPHERS, implemented_ciphers()),
            (offer.key_exchanges, kex, DEFAULT_KEX, implemented_key_exchanges()),
            (offer.macs, macs, DEFAULT_MACS, implemented_macs()),
        ):
            wanted = [name.encode("ascii", "replace") for name in (configured or default)]
            expected = list(dict.fromkeys(name for name in wanted if name in implemented))
            self.assertEqual(list(offered), expected)
            self.assertTrue(offered)
        note("offered")


_CIPHER_NAMES = [*TLS_CIPHERS, "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]
_CURVE_NAMES = [*DEFAULT_CURVES, "P-256", "prime256v1", "P-384"]


def name_lists(known: list[str]) -> st.SearchStrategy[Any]:
    """Lists of known names in any spelling, lists with unknown ones, ``:``-separated text."""
    name = st.sampled_from(known).flatmap(spelled)
    return st.one_of(
        st.lists(name, min_size=1, max_size=5),
        st.lists(name | st.sampled_from(_CIPHER_NAMES + _CURVE_NAMES) | texts, max_size=5),
        st.lists(name, max_size=4).map(":".join),
        texts,
    )


class TLSNameTests(SynchronousTestCase):
    @fuzz(name_lists(_CIPHER_NAMES), expect=("mapped", "refused"))
    def test_ciphers(self, names: Any) -> None:
        """Cipher suite names map to OpenSSL names or raise TLSConfigError naming the option."""
        try:
            tls12, _ = openssl_cipher_names(split_names(names))
        except TLSConfigError as error:
            self.assertTrue(str(error).startswith("cipher: "), str(error))
            note("refused")
            return
        self.assertEqual(len(tls12), len(set(tls12)))
        note("mapped")

    @fuzz(name_lists(_CURVE_NAMES), expect=("mapped", "refused"))
    def test_curves(self, names: Any) -> None:
        """Curve names map to OpenSSL groups or raise TLSConfigError naming the option."""
        try:
            groups = openssl_group_names(split_names(names))
        except TLSConfigError as error:
            self.assertTrue(str(error).startswith("curves: "), str(error))
            note("refused")
            return
        self.assertTrue(groups)
        self.assertEqual(len(groups), len(set(groups)))
        note("mapped")
