"""Reading a configuration file into an :class:`~conch_container.config.AppConfig`.

The steps are ContainerSSH's: choose the format by extension (``.json`` is
JSON, anything else YAML), decode strictly (unknown keys are errors), start
from the defaults, convert the 0.4 ``auth`` shape and translate the 0.3
``kuberun`` section, and validate.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from conch_container.config.app import AppConfig
from conch_container.config.cleartext import cleartext_webhook_warnings
from conch_container.config.errors import ConfigError
from conch_container.config.kuberun import apply_kuberun, refuse_kuberun_backend, split_kuberun
from conch_container.config.schema import Context, SourceFormat, parse_section
from conch_container.config.unsupported import check_unsupported
from conch_container.config.validate import validate_config
from conch_container.config.yamlio import load_yaml, replace_lone_surrogates
from conch_container.shape import ShapeError, check_shape


def source_format_of(path: str) -> SourceFormat:
    """``"json"`` for a ``.json`` file name, else ``"yaml"``."""
    return "json" if path.lower().endswith(".json") else "yaml"


def decode(text: str, source_format: SourceFormat) -> object:
    """The raw data of a configuration document.

    The data is checked with :func:`check_document`, so whatever is returned
    is safe for the recursive walks that parse, copy and dump it.

    :raises ConfigError: for a syntax error, or a document nested too deeply,
        too large, or containing itself.
    """
    if source_format == "json":
        data = _load_json(text)
        check_document(data)
        return _replace_lone_surrogates(data)
    data = load_yaml(text)
    check_document(data)
    return data


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            "", f"invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        # The decoder recurses once per level: a document nested deeper than
        # the interpreter allows fails here, before check_document could
        # name the key where it went too deep.
        raise ConfigError("", "invalid JSON: the document is nested too deeply") from None
    except ValueError:
        # Besides syntax errors (JSONDecodeError, above), the only ValueError
        # is Python refusing to convert an integer of too many digits.
        raise ConfigError(
            "",
            f"invalid JSON: a number has more than {sys.get_int_max_str_digits()} digits",
        ) from None


def check_document(data: object) -> None:
    """Refuse a decoded document nested too deeply, too large, or containing itself.

    Every raw document must pass this before it is parsed: the parsing,
    copying and dumping that follow walk it recursively
    (:mod:`conch_container.shape`).

    :raises ConfigError: naming the key path where the limit was crossed.
    """
    try:
        check_shape(data)
    except ShapeError as error:
        raise ConfigError(error.path, error.problem) from None


def _replace_lone_surrogates(data: Any) -> Any:
    """``data`` with every lone surrogate in its strings and keys replaced by U+FFFD.

    JSON may escape half of a UTF-16 pair (``"\\ud800"``); Python keeps it as
    a character no UTF-8 text can hold. Go's JSON decoder, which ContainerSSH
    uses, replaces it with U+FFFD; so does this. Only called on checked data,
    so the recursion is bounded.
    """
    if isinstance(data, str):
        return replace_lone_surrogates(data)
    if isinstance(data, dict):
        return {
            _replace_lone_surrogates(key): _replace_lone_surrogates(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_replace_lone_surrogates(value) for value in data]
    return data


def parse_config(
    data: object,
    *,
    source_format: SourceFormat = "yaml",
    base_dir: str | None = None,
) -> AppConfig:
    """Build the configuration from decoded YAML or JSON data.

    Unknown keys and malformed values are errors; files named by PEM-or-file
    settings are read. Cross-setting checks are left to
    :func:`~conch_container.config.validate_config`. Deprecations are
    returned in :attr:`AppConfig.warnings`.

    :param data: the document: a mapping, or ``None`` for an empty one.
    :param source_format: ``"yaml"`` or ``"json"``; JSON follows Go's JSON
        rules (durations in integer nanoseconds, case-insensitive keys).
    :param base_dir: directory relative file names are resolved against;
        ``None`` for the working directory, as ContainerSSH does.
    :raises ConfigError: naming the offending key.
    """
    check_document(data)
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError("", "the configuration must be a mapping of sections")
    ctx = Context(source_format=source_format, base_dir=base_dir)
    try:
        document, kuberun = split_kuberun(data, ctx)
        config = parse_section(AppConfig, document, ctx, "")
        config = apply_kuberun(config, kuberun, ctx)
    except ConfigError as error:
        error.warnings = tuple(ctx.warnings)
        raise
    return attrs.evolve(config, warnings=tuple(ctx.warnings))


def merge_config(
    base: AppConfig,
    overlay: object,
    *,
    source_format: SourceFormat = "json",
    explicit: bool = False,
) -> AppConfig:
    """Apply a partial configuration (a configuration server's ``config``) over ``base``.

    ContainerSSH's merge rules by default: only non-zero values override, so
    a setting cannot be switched to ``false``, ``0`` or ``""`` this way;
    non-empty lists replace; maps merge key by key. With ``explicit``, every
    value ``overlay`` gives takes effect (``false``, ``0``, ``""`` and empty
    lists too); keys it leaves out or sets to ``null`` keep ``base``'s value,
    and maps still merge key by key. Each value of ``overlay`` is read and
    checked as it would be in a file, but the result is not validated as a
    whole: :func:`apply_override` is the call that does both.

    :raises ConfigError: naming the offending key.
    """
    check_document(overlay)
    if overlay is not None and not isinstance(overlay, Mapping):
        raise ConfigError("", "the configuration must be a mapping of sections")
    ctx = Context(source_format=source_format, merge=True, explicit=explicit)
    merged = parse_section(AppConfig, overlay, ctx, "", base)
    refuse_kuberun_backend(merged)
    return attrs.evolve(merged, warnings=base.warnings + tuple(ctx.warnings))


def apply_override(
    base: AppConfig,
    override: object,
    *,
    source_format: SourceFormat = "json",
    explicit: bool = False,
) -> AppConfig:
    """The configuration of one connection: ``base`` with ``override`` merged in, fully checked.

    ``override`` is a partial configuration in ContainerSSH's shape (a
    configuration server's ``config``, JSON rules by default), merged as
    :func:`merge_config` merges it (``explicit`` as there); the result is
    then checked as a loaded file is (:func:`load_config`): features this
    version cannot run, then :func:`~conch_container.config.validate_config`.
    Its warnings are ``base``'s and the new ones the override brought.

    :raises ConfigError: naming the key path of the first problem.
    """
    return checked_config(
        merge_config(base, override, source_format=source_format, explicit=explicit)
    )


def checked_config(config: AppConfig) -> AppConfig:
    """``config`` validated as a whole, with the warnings the whole gives added.

    Refused features come before validation: the settings such a feature
    would supply (a configuration server's backend section, say) are what
    validation would otherwise complain about.
    """
    try:
        unsupported = check_unsupported(config)
        validate_config(config)
    except ConfigError as error:
        error.warnings = config.warnings
        raise
    warnings = list(config.warnings)
    for warning in (*unsupported, *cleartext_webhook_warnings(config)):
        if warning not in warnings:
            warnings.append(warning)
    return attrs.evolve(config, warnings=tuple(warnings))


def read_config_text(path: str) -> str:
    """The text of the configuration file.

    :raises ConfigError: if it cannot be read.
    """
    try:
        with open(path, encoding="utf-8-sig") as file:
            return file.read()
    except OSError as error:
        raise ConfigError(
            "", f"cannot read configuration file {path}: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("", f"configuration file {path} is not UTF-8 text") from None


def load_config(path: str | os.PathLike[str], *, base_dir: str | None = None) -> AppConfig:
    """Read, parse and validate a ContainerSSH configuration file.

    A file that switches on a feature this version does not implement and
    cannot safely run without is refused
    (:mod:`conch_container.config.unsupported`), before
    :func:`~conch_container.config.validate_config` checks the rest.

    Warnings are returned in :attr:`AppConfig.warnings` for the caller to
    log: deprecations, features the gateway runs without, webhooks reached
    over plain HTTP across the network, private key files others can read.
    The loader itself logs nothing.

    An empty ``ssh.hostkeys`` is not an error here: the caller generates a
    key (:mod:`conch_container.config.hostkeys`).

    :raises ConfigError: naming the offending key and the problem, with the
        warnings noticed before it in :attr:`ConfigError.warnings`.
    """
    filename = os.fspath(path)
    source_format = source_format_of(filename)
    data = decode(read_config_text(filename), source_format)
    return checked_config(parse_config(data, source_format=source_format, base_dir=base_dir))
