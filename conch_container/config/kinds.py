"""The value kinds config fields are declared with.

Each kind reads a raw YAML/JSON value the way ContainerSSH's Go decoder
reads the corresponding Go type, and writes it back the way ContainerSSH's
``--dump-config`` would.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any

from conch_container import messages
from conch_container.codes import Level
from conch_container.config import durations
from conch_container.config.schema import (
    Check,
    Context,
    Kind,
    describe,
    dump_section,
    fail,
    item,
    parse_section,
)


def as_str(raw: object, ctx: Context, path: str) -> str:
    """A string value; YAML numbers are taken as their text, as yaml.v3 does."""
    if isinstance(raw, str):
        return raw
    if not ctx.json and isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    fail(path, f"must be a string, not {describe(raw)}")


class Str(Kind):
    """A string."""

    type_name = "string"
    zero_is_default = True

    def __init__(self, *checks: Check, type_name: str | None = None) -> None:
        super().__init__(*checks)
        if type_name is not None:
            self.type_name = type_name

    def convert(self, raw: object, ctx: Context, path: str) -> str:
        return as_str(raw, ctx, path)

    def dump(self, value: Any) -> Any:
        return value


class Choice(Str):
    """One of a fixed set of strings."""

    def __init__(self, *values: str) -> None:
        self.values = values
        listed = ", ".join(f'"{value}"' for value in values)
        super().__init__(lambda value: None if value in values else f"must be one of {listed}")
        self.type_name = "one of " + ", ".join(
            f"`{value}`" if value else '`""`' for value in values
        )


class Bool(Kind):
    """A boolean; in YAML also ``yes``/``no``/``on``/``off``/``y``/``n`` as yaml.v3 takes them."""

    type_name = "boolean"
    _WORDS = {
        **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
        **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
    }

    def convert(self, raw: object, ctx: Context, path: str) -> bool:
        if isinstance(raw, bool):
            return raw
        if not ctx.json and isinstance(raw, str) and raw in self._WORDS:
            return self._WORDS[raw]
        fail(path, f"must be true or false, not {describe(raw)}")

    def dump(self, value: Any) -> Any:
        return value


def _as_int(raw: object, path: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    fail(path, f"must be an integer, not {describe(raw)}")


def at_least(minimum: float, text: str | None = None) -> Check:
    """A check that a number is ``>= minimum``."""
    message = f"must be at least {text if text is not None else minimum}"
    return lambda value: message if value < minimum else None


class Int(Kind):
    """An integer."""

    type_name = "integer"
    zero_is_default = True

    def convert(self, raw: object, ctx: Context, path: str) -> int:
        return _as_int(raw, path)

    def dump(self, value: Any) -> Any:
        return value


class Float(Kind):
    """A number (Go ``float32``/``float64``)."""

    type_name = "number"
    zero_is_default = True

    def convert(self, raw: object, ctx: Context, path: str) -> float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            try:
                return float(raw)
            except OverflowError:
                # A float cannot hold an integer beyond about 1.8e308.
                fail(path, "the number is too large")
        fail(path, f"must be a number, not {describe(raw)}")

    def dump(self, value: Any) -> Any:
        return int(value) if float(value).is_integer() else value


class Duration(Kind):
    """A Go ``time.Duration``, held as float seconds.

    YAML takes a Go duration string (``60s``, ``1m30s``) or integer
    nanoseconds; JSON takes integer nanoseconds only (Go's encoding), unless
    ``flexible`` (ContainerSSH's Docker timeouts accept both in both).
    """

    type_name = "duration"
    zero_is_default = True

    def __init__(self, *checks: Check, flexible: bool = False) -> None:
        super().__init__(*checks)
        self.flexible = flexible

    def convert(self, raw: object, ctx: Context, path: str) -> float:
        nanoseconds: int
        if isinstance(raw, str) and (self.flexible or not ctx.json):
            try:
                nanoseconds = durations.parse_duration(raw)
            except ValueError as error:
                fail(path, str(error))
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            if isinstance(raw, float) and not raw.is_integer():
                fail(path, "must be a whole number of nanoseconds")
            try:
                nanoseconds = durations.in_range(int(raw))
            except ValueError as error:
                fail(path, str(error))
        elif ctx.json and not self.flexible:
            fail(path, f"must be a duration in integer nanoseconds in JSON, not {describe(raw)}")
        else:
            fail(path, f"must be a duration such as 60s or 1m30s, not {describe(raw)}")
        if nanoseconds < 0:
            fail(path, "must not be negative")
        return durations.to_seconds(nanoseconds)

    def dump(self, value: Any) -> Any:
        return durations.format_duration(durations.to_nanoseconds(value))


def min_duration(seconds: float) -> Check:
    """A check that a duration is at least ``seconds``."""
    text = durations.format_duration(durations.to_nanoseconds(seconds))
    return lambda value: f"must be at least {text}" if value < seconds else None


class LogLevel(Kind):
    """A log level: a name (``debug`` ... ``emerg``) or a number 0-7."""

    type_name = "log level"

    def parse(self, raw: object, ctx: Context, path: str, base: Any) -> Any:
        if raw == "":
            return base  # an empty string means the default, like other zero values
        return super().parse(raw, ctx, path, base)

    def convert(self, raw: object, ctx: Context, path: str) -> Level:
        try:
            return Level.parse(raw)
        except ValueError:
            fail(
                path,
                "must be a log level (debug, info, notice, warning, error, crit, alert, emerg)"
                " or a number 0-7",
            )

    def dump(self, value: Any) -> Any:
        return Level(value).label


class ListOf(Kind):
    """A list (a tuple in the config object) of items of another kind.

    ``colon`` also accepts one colon-separated string, as ContainerSSH does
    for TLS cipher and curve lists.
    """

    def __init__(
        self,
        item_kind: Kind,
        *checks: Check,
        colon: bool = False,
        type_name: str | None = None,
    ) -> None:
        super().__init__(*checks)
        self.item_kind = item_kind
        self.colon = colon
        self.type_name = type_name or f"list of {item_kind.type_name}s"

    def convert(self, raw: object, ctx: Context, path: str) -> tuple[Any, ...]:
        if self.colon and isinstance(raw, str):
            raw = [part for part in raw.split(":") if part.strip()]
        if not isinstance(raw, list | tuple):
            fail(path, f"must be a list, not {describe(raw)}")
        result = []
        for index, entry in enumerate(raw):
            entry_path = item(path, index)
            if entry is None:
                fail(entry_path, "must not be null")
            value = self.item_kind.convert(entry, ctx, entry_path)
            for check in self.item_kind.checks:
                problem = check(value)
                if problem:
                    fail(entry_path, problem)
            result.append(value)
        return tuple(result)

    def dump(self, value: Any) -> Any:
        return [self.item_kind.dump(entry) for entry in value]


def not_empty(value: Any) -> str | None:
    """A check that a list or map is not empty."""
    return None if value else "must not be empty"


class Canonical(Str):
    """A name with several accepted spellings, kept in its canonical spelling."""

    def __init__(self, canonical: Callable[[str], str | None], what: str) -> None:
        super().__init__()
        self.canonical = canonical
        self.what = what
        self.type_name = what

    def convert(self, raw: object, ctx: Context, path: str) -> str:
        text = as_str(raw, ctx, path)
        name = self.canonical(text)
        if name is None:
            fail(path, f"unsupported {self.what} {text!r}")
        return name


class StrMap(Kind):
    """A map of strings to strings (a dict in the config object)."""

    type_name = "map of strings"

    def convert(self, raw: object, ctx: Context, path: str) -> dict[str, str]:
        if not isinstance(raw, Mapping):
            fail(path, f"must be a mapping, not {describe(raw)}")
        result = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                fail(f"{path}.{key}", "keys must be strings")
            result[key] = as_str(value, ctx, f"{path}.{key}")
        return result

    def combine(self, value: Any, base: Any, ctx: Context) -> Any:
        if ctx.merge and isinstance(base, dict):
            return {**base, **value}
        return value

    def dump(self, value: Any) -> Any:
        return dict(value)


def _overlay(base: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """Keys of ``value`` replace those of ``base``, matched case-insensitively.

    This is what decoding into a Go struct pre-filled with defaults does: the
    default image stays unless the file names one (as ``image`` or ``Image``).
    """
    given = {key.lower() for key in value}
    result = {key: entry for key, entry in base.items() if key.lower() not in given}
    result.update(value)
    return result


def _deep_merge(base: Any, value: Any, explicit: bool = False) -> Any:
    """The per-connection merge of a structure: maps merge key by key.

    ContainerSSH's rule (``explicit`` false): only non-empty values override.
    With ``explicit``, every value given replaces the base one, ``false``,
    ``0``, ``""`` and empty lists included.
    """
    if isinstance(base, dict) and isinstance(value, dict):
        merged = dict(base)
        folded = {key.lower(): key for key in base if isinstance(key, str)}
        for key, entry in value.items():
            target = folded.get(key.lower(), key) if isinstance(key, str) else key
            merged[target] = _deep_merge(base.get(target), entry, explicit)
        return merged
    if not explicit and value in (None, "", 0, False, [], {}) and base is not None:
        return base
    return value


class RawMap(Kind):
    """A structure kept as written (Docker and Kubernetes API objects).

    ``overlay``: the default's keys survive unless the file gives them, as
    when Go decodes into a struct that holds its defaults.
    """

    type_name = "mapping"

    def __init__(self, *checks: Check, overlay: bool = False) -> None:
        super().__init__(*checks)
        self.overlay = overlay

    def convert(self, raw: object, ctx: Context, path: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            fail(path, f"must be a mapping, not {describe(raw)}")
        for key in raw:
            if not isinstance(key, str):
                fail(f"{path}.{key}", "keys must be strings")
        return copy.deepcopy(dict(raw))

    def combine(self, value: Any, base: Any, ctx: Context) -> Any:
        if ctx.merge and isinstance(base, dict):
            return _deep_merge(base, value, ctx.explicit)
        if self.overlay and isinstance(base, dict):
            return _overlay(base, value)
        return value

    def dump(self, value: Any) -> Any:
        return copy.deepcopy(value)


class PemOrFile(Str):
    """PEM text, or the name of a file holding it, read at load time.

    A value whose first non-blank characters are ``-----`` is PEM text; any
    other non-empty value is a file name. The config object holds the text.

    ``private``: the file holds a private key, so a warning
    (``CONFIG_PRIVATE_KEY_FILE_READABLE``) is added when other users may read
    or change it (:func:`private_file_exposure`).
    """

    type_name = "PEM text or file"

    def __init__(self, *checks: Check, private: bool = False) -> None:
        super().__init__(*checks)
        self.private = private

    def convert(self, raw: object, ctx: Context, path: str) -> str:
        text = as_str(raw, ctx, path)
        stripped = text.strip()
        if not stripped or stripped.startswith("-----"):
            return text
        try:
            with open(ctx.resolve(stripped), encoding="utf-8") as file:
                if self.private:
                    # The descriptor just read, so the mode is that of this very file.
                    self._check_exposure(os.fstat(file.fileno()), stripped, ctx, path)
                content = file.read()
        except OSError as error:
            fail(path, f"cannot read file {stripped}: {error.strerror or error}")
        except UnicodeDecodeError:
            fail(path, f"file {stripped} is not a PEM text file")
        except ValueError:
            # open() refuses a name with a NUL byte (ValueError) or with a
            # character the file system encoding cannot hold, such as a lone
            # surrogate (UnicodeEncodeError). The name is shown escaped: as
            # is, it could not be printed or logged either.
            fail(path, f"cannot read file {stripped!r}: no file can have this name")
        # Refused now, not when the setting is first used: the config holds
        # the text, and text that is not PEM would be read back as a file name
        # (from a dumped configuration, for instance).
        first = content.lstrip()
        if first and not first.startswith("-----"):
            if first.startswith(("ssh-", "ecdsa-sha2-")):
                fail(path, f"file {stripped} holds an OpenSSH public key line, not PEM text")
            fail(path, f"file {stripped} holds no PEM text (it should start with -----BEGIN)")
        return content

    def _check_exposure(
        self, status: os.stat_result, filename: str, ctx: Context, path: str
    ) -> None:
        who = private_file_exposure(status)
        if who is None:
            return
        mode = stat.S_IMODE(status.st_mode)
        ctx.warn(
            messages.CONFIG_PRIVATE_KEY_FILE_READABLE,
            path,
            f"the private key file {filename} (mode {mode:04o}) is open to {who}, and OpenSSH's "
            f"sshd would refuse it; make it accessible to its owner only (chmod 600 {filename})",
        )


def private_file_exposure(status: os.stat_result) -> str | None:
    """Who besides the owner may read or change a private key file, or ``None``.

    sshd's rule for its own keys: a file owned by the user the server runs as
    must give its group and others no access at all. A file owned by someone
    else may let its group read it (a root-owned key the gateway reads through
    its group), but never everyone.
    """
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o007:
        return "every user of this machine"
    if mode & 0o070 and status.st_uid == os.geteuid():
        return "the file's group"
    return None


class Section(Kind):
    """A nested block of settings (another section class)."""

    type_name = "section"

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def parse(self, raw: object, ctx: Context, path: str, base: Any) -> Any:
        return parse_section(self.cls, raw, ctx, path, base)

    def dump(self, value: Any) -> Any:
        return dump_section(value)
