"""Go duration syntax: parsing and formatting as Go's time package does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config.durations import (
    MAX_NANOSECONDS,
    MIN_NANOSECONDS,
    format_duration,
    parse_duration,
    to_nanoseconds,
    to_seconds,
)

# Cases from Go's own time package tests.
PARSE_CASES = {
    "0": 0,
    "5s": 5 * 10**9,
    "30s": 30 * 10**9,
    "1478s": 1478 * 10**9,
    "-5s": -5 * 10**9,
    "+5s": 5 * 10**9,
    "-0": 0,
    "+0": 0,
    "5.0s": 5 * 10**9,
    "5.6s": 5_600_000_000,
    "5.s": 5 * 10**9,
    ".5s": 500_000_000,
    "1.004s": 1_004_000_000,
    "100.00100s": 100_001_000_000,
    "10ns": 10,
    "11us": 11_000,
    "12\u00b5s": 12_000,
    "12\u03bcs": 12_000,
    "13ms": 13_000_000,
    "15m": 15 * 60 * 10**9,
    "16h": 16 * 3600 * 10**9,
    "3h30m": (3 * 3600 + 30 * 60) * 10**9,
    "10.5s4m": (4 * 60 + 10) * 10**9 + 500_000_000,
    "-2m3.4s": -(2 * 60 * 10**9 + 3_400_000_000),
    "1h2m3s4ms5us6ns": 3723 * 10**9 + 4_005_006,
    "39h9m14.425s": (39 * 3600 + 9 * 60 + 14) * 10**9 + 425_000_000,
    "52763797000ns": 52_763_797_000,
    "0.3333333333333333333h": 20 * 60 * 10**9,
    "9007199254740993ns": 9_007_199_254_740_993,
    "9223372036854775807ns": MAX_NANOSECONDS,
    "9223372036854775.807us": MAX_NANOSECONDS,
    "9223372036s854ms775us807ns": MAX_NANOSECONDS,
    "-9223372036854775808ns": MIN_NANOSECONDS,
    "0.100000000000000000000h": 6 * 60 * 10**9,
    "1m0s": 60 * 10**9,
}

FORMAT_CASES = {
    0: "0s",
    1: "1ns",
    1100: "1.1\u00b5s",
    2_200_000: "2.2ms",
    3_300_000_000: "3.3s",
    (4 * 60 + 5) * 10**9: "4m5s",
    (4 * 60 + 5) * 10**9 + 1_000_000: "4m5.001s",
    (5 * 3600 + 6 * 60 + 7) * 10**9 + 1_000_000: "5h6m7.001s",
    8 * 60 * 10**9 + 1: "8m0.000000001s",
    60 * 10**9: "1m0s",
    3600 * 10**9: "1h0m0s",
    15 * 10**9: "15s",
    MAX_NANOSECONDS: "2562047h47m16.854775807s",
    MIN_NANOSECONDS: "-2562047h47m16.854775808s",
}


class ParseDurationTests(SynchronousTestCase):
    def test_go_examples(self) -> None:
        """Every example Go accepts parses to Go's nanosecond count."""
        for text, expected in PARSE_CASES.items():
            self.assertEqual(parse_duration(text), expected, text)

    def test_invalid(self) -> None:
        """What Go rejects is rejected with an explanation."""
        for text in ["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "1 s", " 1s", "1s ", "x"]:
            with self.assertRaises(ValueError, msg=text):
                parse_duration(text)

    def test_missing_unit(self) -> None:
        """A number without a unit is reported as such."""
        with self.assertRaises(ValueError) as raised:
            parse_duration("30")
        self.assertEqual(str(raised.exception), "missing unit in duration '30'")

    def test_unknown_unit(self) -> None:
        """An unknown unit is named."""
        with self.assertRaises(ValueError) as raised:
            parse_duration("2d")
        self.assertEqual(str(raised.exception), "unknown unit 'd' in duration '2d'")

    def test_overflow(self) -> None:
        """Values outside Go's int64 nanoseconds are rejected."""
        for text in ["9223372036854775808ns", "9223372036854775.808us", "3000000h"]:
            with self.assertRaises(ValueError, msg=text):
                parse_duration(text)


class FormatDurationTests(SynchronousTestCase):
    def test_go_examples(self) -> None:
        """Formatting matches Go's Duration.String."""
        for nanoseconds, expected in FORMAT_CASES.items():
            self.assertEqual(format_duration(nanoseconds), expected)

    @given(st.integers(min_value=MIN_NANOSECONDS, max_value=MAX_NANOSECONDS))
    def test_round_trip(self, nanoseconds: int) -> None:
        """Parsing a formatted duration gives back the same nanosecond count."""
        self.assertEqual(parse_duration(format_duration(nanoseconds)), nanoseconds)

    @given(st.integers(min_value=0, max_value=2**52))
    def test_seconds_round_trip(self, nanoseconds: int) -> None:
        """Float seconds convert back to the exact nanosecond count they came from."""
        self.assertEqual(to_nanoseconds(to_seconds(nanoseconds)), nanoseconds)
