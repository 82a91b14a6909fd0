"""Writing the effective configuration back out as YAML (``--dump-config``)."""

from __future__ import annotations

from typing import Any

from conch_container.config.app import AppConfig
from conch_container.config.schema import dump_section
from conch_container.config.yamlio import dump_yaml


def config_to_data(config: AppConfig) -> dict[str, Any]:
    """The configuration as a YAML/JSON-ready mapping with ContainerSSH's key names."""
    return dump_section(config)


def dump_config(config: AppConfig) -> str:
    """The effective configuration as a YAML document.

    Every setting is written, defaults included, with ContainerSSH's key names,
    durations in Go notation (``1m0s``) and log levels by name. Values are shown
    as they are held: secrets are not masked (this is the operator's own file),
    and host keys and certificates read from files appear as their PEM text.
    Loading the output gives an equal configuration.
    """
    return dump_yaml(config_to_data(config))
