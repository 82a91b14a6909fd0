"""Fuzzing the Go duration parser every duration setting goes through.

``parse_duration`` may raise only ``ValueError``, returns Go's int64
nanoseconds, and reads back whatever ``format_duration`` writes.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import example
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config.durations import (
    MAX_NANOSECONDS,
    MIN_NANOSECONDS,
    format_duration,
    parse_duration,
)
from tests.fuzz import fuzz, note

UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

#: Characters that make up durations, and some that only look like they do.
_ALPHABET = st.sampled_from([*"0123456789.+-nsuµμmh", "\u0663", "\u00b2", " ", "e", "x"])

durationish = st.text(_ALPHABET, max_size=30)


@st.composite
def go_durations(draw: st.DrawFn) -> tuple[str, Fraction, int]:
    """A well-formed Go duration: its text, its exact value in ns and its number of parts."""
    sign = draw(st.sampled_from(["", "+", "-"]))
    parts = draw(
        st.lists(
            st.tuples(
                st.integers(0, 10**12) | st.integers(0, 10**25),
                st.none() | st.text("0123456789", min_size=0, max_size=12),
                st.sampled_from(sorted(UNITS)),
            ),
            min_size=1,
            max_size=4,
        )
    )
    text, exact = sign, Fraction(0)
    for whole, fraction, unit in parts:
        if fraction is None:
            text += f"{whole}{unit}"
            exact += whole * UNITS[unit]
        else:
            text += f"{whole}.{fraction}{unit}"
            digits = Fraction(int(fraction), 10 ** len(fraction)) if fraction else Fraction(0)
            exact += (whole + digits) * UNITS[unit]
    return text, (-exact if sign == "-" else exact), len(parts)


class DurationTests(SynchronousTestCase):
    @fuzz(st.text(max_size=30) | durationish, expect=("parsed", "rejected"))
    @example("0")
    @example("-0")
    @example("1" * 400 + "s")
    @example("9223372036854775807ns")
    @example("-9223372036854775808ns")
    @example(".5h")
    def test_any_text(self, text: str) -> None:
        """Any text is a duration in Go's int64 range or a ValueError with a message."""
        try:
            nanoseconds = parse_duration(text)
        except ValueError as error:
            self.assertTrue(str(error))
            note("rejected")
            return
        note("parsed")
        self.assertIsInstance(nanoseconds, int)
        self.assertTrue(MIN_NANOSECONDS <= nanoseconds <= MAX_NANOSECONDS, nanoseconds)

    @fuzz(go_durations(), expect=("parsed", "out of range"))
    def test_well_formed(self, duration: tuple[str, Fraction, int]) -> None:
        """A well-formed duration is its value, as Go computes it, or out of range."""
        text, exact, parts = duration
        try:
            nanoseconds = parse_duration(text)
        except ValueError as error:
            # Go accepts -2**63, so -(2**63) - 1 is the first value out of range below.
            self.assertFalse(MIN_NANOSECONDS <= exact <= MAX_NANOSECONDS - parts - 1, text)
            self.assertIn("out of range", str(error))
            note("out of range")
            return
        note("parsed")
        # Go adds each part's fraction truncated to whole nanoseconds, in float64.
        self.assertLessEqual(abs(nanoseconds - exact), parts + 1, text)

    @fuzz(
        st.integers(MIN_NANOSECONDS, MAX_NANOSECONDS)
        | st.sampled_from([0, 1, -1, 999, 1000, MAX_NANOSECONDS, MIN_NANOSECONDS]),
        expect=("round trip",),
    )
    def test_round_trip(self, nanoseconds: int) -> None:
        """What ``format_duration`` writes, ``parse_duration`` reads back exactly."""
        self.assertEqual(parse_duration(format_duration(nanoseconds)), nanoseconds)
        note("round trip")
