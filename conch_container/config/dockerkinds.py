"""How ``docker.execution``'s host and platform settings are read, beyond their tables.

The container and network settings are plain Engine API structures, read by
:class:`~conch_container.config.apistruct.ApiStruct` alone. The host
settings embed Docker's ``Resources``: ContainerSSH's YAML nests them under
``resources``, the Engine API has them flat (``Memory``); both are read,
held flat, and written back nested. The platform is sent as the ``platform``
parameter of the create call (:func:`platform_parameter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conch_container.config.apistruct import ApiStruct, Reader, dump_struct
from conch_container.config.apivalues import mapping
from conch_container.config.dockerapi import (
    HOST_CONFIG_FLAT,
    PLATFORM,
    RESOURCES,
    RESOURCES_KEY,
)
from conch_container.config.schema import fail, join


class HostConfigStruct(ApiStruct):
    """``docker.execution.host``: Docker's ``HostConfig``, its resources nested or flat."""

    def __init__(self) -> None:
        super().__init__(HOST_CONFIG_FLAT)

    def read(self, reader: Reader, raw: object, path: str) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        nested: dict[str, Any] = {}
        for key, value in mapping(raw, path).items():
            (nested if key.lower() == RESOURCES_KEY else flat)[key] = value
        if len(nested) > 1:
            first, second = list(nested)[:2]
            fail(join(path, second), f'is the same field as "{first}"')
        out = reader.struct(flat, self.table, path)
        for key, value in nested.items():
            if value is None:
                continue
            where = join(path, key)
            for name, setting in reader.struct(value, RESOURCES, where).items():
                if name in out:
                    fail(join(where, name), "is also given outside resources")
                out[name] = setting
        return out

    def dump(self, value: Any) -> Any:
        if value is None:
            return None
        resources = {name: entry for name, entry in value.items() if name in RESOURCES.by_name}
        rest = {name: entry for name, entry in value.items() if name not in resources}
        out = dump_struct(rest, self.table)
        if resources:
            out[RESOURCES_KEY] = dump_struct(resources, RESOURCES)
        return out


def _variant_needs_architecture(platform: Any) -> str | None:
    if platform and platform.get("variant") and not platform.get("architecture"):
        return "a variant needs an architecture"
    return None


class PlatformStruct(ApiStruct):
    """``docker.execution.platform``: the OCI ``Platform``; a variant needs an architecture."""

    def __init__(self) -> None:
        super().__init__(PLATFORM, _variant_needs_architecture)


def platform_parameter(platform: Mapping[str, Any] | None) -> str | None:
    """The create call's ``platform`` parameter (``os/arch[/variant]``) for a held platform.

    ``None`` when no platform is configured; the OS is ``linux`` when only
    an architecture is given.
    """
    if not platform:
        return None
    parts = [platform.get("os") or "linux"]
    if platform.get("architecture"):
        parts.append(platform["architecture"])
        if platform.get("variant"):
            parts.append(platform["variant"])
    return "/".join(parts)
