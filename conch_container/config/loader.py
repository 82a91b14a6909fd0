"""Reading a configuration file into an :class:`~conch_container.config.AppConfig`.

The steps are ContainerSSH's: choose the format by extension (``.json`` is
JSON, anything else YAML), decode strictly (unknown keys are errors), start
from the defaults, convert the 0.4 ``auth`` shape, and validate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import attrs

from conch_container.config.app import AppConfig
from conch_container.config.errors import ConfigError
from conch_container.config.schema import Context, SourceFormat, parse_section
from conch_container.config.validate import validate_config
from conch_container.config.yamlio import load_yaml


def source_format_of(path: str) -> SourceFormat:
    """``"json"`` for a ``.json`` file name, else ``"yaml"``."""
    return "json" if path.lower().endswith(".json") else "yaml"


def decode(text: str, source_format: SourceFormat) -> object:
    """The raw data of a configuration document.

    :raises ConfigError: for a syntax error.
    """
    if source_format == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                "", f"invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
            ) from None
    return load_yaml(text)


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
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError("", "the configuration must be a mapping of sections")
    ctx = Context(source_format=source_format, base_dir=base_dir)
    config = parse_section(AppConfig, data, ctx, "")
    return attrs.evolve(config, warnings=tuple(ctx.warnings))


def merge_config(
    base: AppConfig,
    overlay: object,
    *,
    source_format: SourceFormat = "json",
) -> AppConfig:
    """Apply a partial configuration (a configuration server's ``config``) over ``base``.

    ContainerSSH's merge rules: only non-zero values override, so a setting
    cannot be switched to ``false``, ``0`` or ``""`` this way; non-empty lists
    replace; maps merge key by key. The result is not validated: call
    :func:`~conch_container.config.validate_config` on it.

    :raises ConfigError: naming the offending key.
    """
    if overlay is not None and not isinstance(overlay, Mapping):
        raise ConfigError("", "the configuration must be a mapping of sections")
    ctx = Context(source_format=source_format, merge=True)
    merged = parse_section(AppConfig, overlay, ctx, "", base)
    return attrs.evolve(merged, warnings=base.warnings + tuple(ctx.warnings))


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

    Validation is :func:`~conch_container.config.validate_config` with
    ``dynamic`` set when ``configserver.url`` is: the backend and security
    settings may then come from the configuration server. Deprecations
    found are returned in :attr:`AppConfig.warnings` for the caller to log;
    the loader itself logs nothing.

    An empty ``ssh.hostkeys`` is not an error here: the caller generates a
    key (:mod:`conch_container.config.hostkeys`).

    :raises ConfigError: naming the offending key and the problem.
    """
    filename = os.fspath(path)
    source_format = source_format_of(filename)
    data = decode(read_config_text(filename), source_format)
    config = parse_config(data, source_format=source_format, base_dir=base_dir)
    validate_config(config, dynamic=bool(config.configserver.url))
    return config
