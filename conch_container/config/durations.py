"""Go ``time.Duration`` text: the duration syntax of ContainerSSH files.

ContainerSSH writes durations as Go does (``60s``, ``1m0s``, ``1h2m3.5s``,
``100ms``, ``500µs``) and reads them with Go's ``time.ParseDuration``. Both
directions are reproduced here on integer nanoseconds, the exact quantity Go
stores, so that a value survives any number of parse/format round trips; the
config objects then expose it as float seconds (``ns / 1e9``).
"""

from __future__ import annotations

from fractions import Fraction

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

#: The range of Go's int64 nanosecond count.
MAX_NANOSECONDS = 2**63 - 1
MIN_NANOSECONDS = -(2**63)

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign, what Go prints
    "\u03bcs": MICROSECOND,  # Greek small letter mu, also accepted by Go
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_LIMIT = 1 << 63


def _leading_int(text: str, position: int) -> tuple[int, int]:
    value = 0
    while position < len(text) and "0" <= text[position] <= "9":
        value = value * 10 + ord(text[position]) - ord("0")
        if value > _LIMIT:
            raise OverflowError
        position += 1
    return value, position


def _leading_fraction(text: str, position: int) -> tuple[int, float, int]:
    # Digits past int64 precision are consumed but ignored, as in Go.
    value, scale, overflow = 0, 1.0, False
    while position < len(text) and "0" <= text[position] <= "9":
        if not overflow:
            candidate = value * 10 + ord(text[position]) - ord("0")
            if value > (_LIMIT - 1) // 10 or candidate > _LIMIT:
                overflow = True
            else:
                value, scale = candidate, scale * 10
        position += 1
    return value, scale, position


def parse_duration(text: str) -> int:
    """Parse a Go duration string into integer nanoseconds.

    Accepts exactly what Go's ``time.ParseDuration`` accepts, with Go's
    arithmetic: an optional sign and one or more decimal numbers, each with an
    optional fraction and a unit (``ns``, ``us``/``µs``, ``ms``, ``s``,
    ``m``, ``h``), or a bare ``0``.

    :raises ValueError: with a message fit for the operator.
    """
    original = text
    position, negative = 0, False
    if text[:1] in ("-", "+"):
        negative = text[0] == "-"
        position = 1
    if text[position:] == "0":
        return 0
    if position == len(text):
        raise ValueError(f"invalid duration {original!r}")
    total = 0
    try:
        while position < len(text):
            start = position
            whole, position = _leading_int(text, position)
            has_whole = position != start
            fraction, scale, has_fraction = 0, 1.0, False
            if position < len(text) and text[position] == ".":
                start = position + 1
                fraction, scale, position = _leading_fraction(text, start)
                has_fraction = position != start
            if not has_whole and not has_fraction:
                raise ValueError(f"invalid duration {original!r}")
            start = position
            while position < len(text) and text[position] != "." and not text[position].isdigit():
                position += 1
            if position == start:
                raise ValueError(f"missing unit in duration {original!r}")
            unit = text[start:position]
            multiplier = _UNITS.get(unit)
            if multiplier is None:
                raise ValueError(f"unknown unit {unit!r} in duration {original!r}")
            if whole > _LIMIT // multiplier:
                raise OverflowError
            whole *= multiplier
            if fraction:
                # Go computes the fraction in float64; so do we, for identical results.
                whole += int(float(fraction) * (float(multiplier) / scale))
                if whole > _LIMIT:
                    raise OverflowError
            total += whole
            if total > _LIMIT:
                raise OverflowError
    except OverflowError:
        raise ValueError(f"duration {original!r} is out of range") from None
    if negative:
        return -total
    if total > MAX_NANOSECONDS:
        raise ValueError(f"duration {original!r} is out of range")
    return total


def in_range(nanoseconds: int) -> int:
    """``nanoseconds``, if Go's ``time.Duration`` (an ``int64``) can hold it.

    :raises ValueError: if it cannot.
    """
    if not MIN_NANOSECONDS <= nanoseconds <= MAX_NANOSECONDS:
        raise ValueError(
            f"a duration in nanoseconds must be between {MIN_NANOSECONDS} and "
            f"{MAX_NANOSECONDS} (about 292 years)"
        )
    return nanoseconds


def _with_fraction(value: int, unit: int) -> str:
    """``value / unit`` in decimal, the fraction without trailing zeros."""
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{rest:0{digits}d}".rstrip("0")


def format_duration(nanoseconds: int) -> str:
    """Format integer nanoseconds the way Go's ``Duration.String`` does.

    ``0s``, ``1.5ms``, ``500µs``, ``15s``, ``1m0s``, ``1h2m3.5s``.
    """
    if nanoseconds == 0:
        return "0s"
    magnitude = abs(nanoseconds)
    if magnitude < MICROSECOND:
        text = f"{magnitude}ns"
    elif magnitude < MILLISECOND:
        text = _with_fraction(magnitude, MICROSECOND) + "\u00b5s"
    elif magnitude < SECOND:
        text = _with_fraction(magnitude, MILLISECOND) + "ms"
    else:
        text = _with_fraction(magnitude % MINUTE, SECOND) + "s"
        minutes = magnitude // MINUTE
        if minutes:
            text = f"{minutes % 60}m" + text
            hours = minutes // 60
            if hours:
                text = f"{hours}h" + text
    return "-" + text if nanoseconds < 0 else text


def to_seconds(nanoseconds: int) -> float:
    """Nanoseconds as the float seconds the config objects carry."""
    return nanoseconds / SECOND


def to_nanoseconds(seconds: float) -> int:
    """The nanosecond count a float-seconds value stands for.

    Exact for every value produced by :func:`to_seconds` from a count below
    2**52 (about 52 days); beyond that the nearest nanosecond.
    """
    return round(Fraction(seconds) * SECOND)
