"""The ``docker`` section: engine connection, container settings and timeouts.

``execution.container``, ``host``, ``network`` and ``platform`` are Docker
Engine API structures: lower-cased Go field names in YAML (``image``,
``cmd``, ``env``, ``binds``, ``resources``), Engine API names in JSON
(``Image``, ``HostConfig`` fields). They are read against the Engine API's
field tables (:mod:`~conch_container.config.dockerapi`): a value of the wrong
type is an error naming its key path, and the section holds them in Engine
API JSON (``{"Image": ..., "WorkingDir": ...}``), as the create call sends
them. Fields the tables do not know are passed on, with a warning, as Docker
adds fields over time.
"""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

from typing import Any

import attrs

from conch_container.config.apistruct import ApiStruct
from conch_container.config.dockerapi import CONTAINER_CONFIG, NETWORKING_CONFIG
from conch_container.config.dockerkinds import HostConfigStruct, PlatformStruct
from conch_container.config.kinds import (
    Bool,
    Choice,
    Duration,
    Int,
    ListOf,
    RawMap,
    Section,
    Str,
    StrMap,
    at_least,
)
from conch_container.config.schema import fail, join, setting
from conch_container.config.values import is_pem

GUEST_IMAGE = "containerssh/containerssh-guest-image"
AGENT_PATH = "/usr/bin/containerssh-agent"
IDLE_COMMAND = (AGENT_PATH, "wait-signal", "--signal", "INT", "--signal", "TERM")
SHELL_COMMAND = ("/bin/bash",)
SUBSYSTEMS = {"sftp": "/usr/lib/openssh/sftp-server"}


@attrs.frozen
class DockerConnectionConfig:
    """How to reach the Docker engine."""

    host: str = setting(
        "host",
        Str(),
        "unix:///var/run/docker.sock",
        doc="Docker engine endpoint (`unix://`, `tcp://`); API version negotiated.",
    )
    cacert: str = setting(
        "cacert", Str(), "", doc="CA certificate (PEM text) of the engine, for TLS."
    )
    cert: str = setting("cert", Str(), "", doc="Client certificate (PEM text), for TLS.")
    key: str = setting("key", Str(), "", doc="Client key (PEM text), for TLS.")


@attrs.frozen
class DockerExecutionConfig:
    """What container each user gets and how programs run in it."""

    container: dict[str, Any] = setting(
        "container",
        ApiStruct(CONTAINER_CONFIG, overlay=True),
        {"Image": GUEST_IMAGE},
        doc="Container settings; `image` is required, `cmd` is always replaced.",
    )
    host: dict[str, Any] | None = setting(
        "host",
        HostConfigStruct(),
        None,
        doc="Host settings; the resources nested under `resources` or flat.",
    )
    network: dict[str, Any] | None = setting(
        "network", ApiStruct(NETWORKING_CONFIG), None, doc="Network settings."
    )
    platform: dict[str, Any] | None = setting(
        "platform",
        PlatformStruct(),
        None,
        doc="Platform the image is pulled and run for: `os`, `architecture`, `variant`.",
    )
    containername: str = setting(
        "containername",
        Str(),
        "",
        doc="Fixed container name; empty: Docker picks one. A fixed name allows one "
        "connection at a time.",
    )
    auth: dict[str, Any] | None = setting(
        "auth",
        RawMap(),
        None,
        doc="Registry credentials for pulling: `username`, `password`, `auth`, `email`, "
        "`serveraddress`, `identitytoken`, `registrytoken`.",
    )
    mode: str = setting(
        "mode",
        Choice("connection", "session"),
        "connection",
        doc="`connection`: one container per connection; `session`: one per session channel.",
    )
    idle_command: tuple[str, ...] = setting(
        "idleCommand",
        ListOf(Str()),
        IDLE_COMMAND,
        doc="Command the container runs while idle (connection mode).",
    )
    shell_command: tuple[str, ...] = setting(
        "shellCommand", ListOf(Str()), SHELL_COMMAND, doc="Command run for `shell` requests."
    )
    agent_path: str = setting(
        "agentPath", Str(), AGENT_PATH, doc="Path of the ContainerSSH guest agent in the image."
    )
    disable_agent: bool = setting(
        "disableAgent",
        Bool(),
        False,
        doc="Run without the guest agent (no signals, no file writes, no forwarding).",
    )
    subsystems: dict[str, str] = setting(
        "subsystems", StrMap(), SUBSYSTEMS, doc="Subsystem name to program path."
    )
    image_pull_policy: str = setting(
        "imagePullPolicy",
        Choice("Always", "IfNotPresent", "Never"),
        "IfNotPresent",
        doc="When to pull the image: `Always`, `IfNotPresent` or `Never`.",
    )
    expose_auth_metadata_as_env: bool = setting(
        "exposeAuthMetadataAsEnv",
        Bool(),
        False,
        doc="Pass every authentication metadata entry to the container as an environment variable.",
    )


def _timeout(key: str, default: float, doc: str) -> Any:
    # ContainerSSH reads the Docker timeouts as strings or numbers in YAML and JSON.
    return setting(key, Duration(flexible=True), default, doc=doc)


@attrs.frozen
class DockerTimeoutConfig:
    """Time limits of Docker operations."""

    container_start: float = _timeout(
        "containerStart", 60.0, "Pull, create and start of the container."
    )
    container_stop: float = _timeout("containerStop", 60.0, "Stop and removal of the container.")
    command_start: float = _timeout("commandStart", 60.0, "Start of a program in the container.")
    signal: float = _timeout("signal", 60.0, "Delivery of a signal.")
    window: float = _timeout("window", 60.0, "A terminal resize.")
    http: float = _timeout(
        "http",
        15.0,
        "One HTTP request to the engine; after a create request that timed out, also how "
        "long the engine is asked for the container it may have created all the same.",
    )


@attrs.frozen
class DockerPoolConfig:
    """Containers created and started ahead of demand (connection mode)."""

    size: int = setting(
        "size",
        Int(at_least(0)),
        0,
        doc="Containers kept created and started for each container template (this "
        "section's settings, without what belongs to one user: environment from "
        "authentication, files, labels naming the user); a new connection takes one and "
        "the pool makes another. 0: no pool. Only in connection mode, without "
        "`containername`.",
        extension=True,
    )
    refill_concurrency: int = setting(
        "refillConcurrency",
        Int(at_least(1)),
        2,
        doc="Pool containers being created at the same time, at most; a failed one is "
        "retried after the backend's retry interval (10 s).",
        extension=True,
    )


@attrs.frozen
class DockerConfig:
    """The Docker backend: engine connection, the container each user gets, time limits."""

    connection: DockerConnectionConfig = setting(
        "connection",
        Section(DockerConnectionConfig),
        DockerConnectionConfig(),
        doc="Engine connection.",
    )
    execution: DockerExecutionConfig = setting(
        "execution",
        Section(DockerExecutionConfig),
        DockerExecutionConfig(),
        doc="Container settings.",
    )
    timeouts: DockerTimeoutConfig = setting(
        "timeouts", Section(DockerTimeoutConfig), DockerTimeoutConfig(), doc="Time limits."
    )
    pool: DockerPoolConfig = setting(
        "pool",
        Section(DockerPoolConfig),
        DockerPoolConfig(),
        doc="Warm pool: containers ready before users connect (see docs/warm-pool.md).",
        extension=True,
    )


def validate_docker(config: DockerConfig, path: str = "docker") -> None:
    """The checks ContainerSSH makes when ``docker`` is the selected backend.

    :raises ConfigError: naming the offending key.
    """
    connection = config.connection
    tls = [connection.cacert, connection.cert, connection.key]
    if any(tls) and not all(tls):
        fail(join(path, "connection"), "cacert, cert and key must be set together for TLS")
    for key, value in zip(("cacert", "cert", "key"), tls, strict=True):
        if value and not is_pem(value):
            fail(join(path, f"connection.{key}"), "must be PEM text")
    if not connection.host:
        fail(join(path, "connection.host"), "must not be empty")
    execution = config.execution
    where = join(path, "execution")
    if not execution.container.get("Image", "").strip():
        fail(join(where, "container.image"), "an image is required")
    if execution.mode == "connection":
        if not execution.idle_command:
            fail(join(where, "idleCommand"), "must not be empty in connection mode")
        if not execution.shell_command:
            fail(join(where, "shellCommand"), "must not be empty in connection mode")
    else:
        policy = (execution.host or {}).get("RestartPolicy", {}).get("Name")
        if policy not in (None, "", "no"):
            fail(
                join(where, "host.restartpolicy"),
                "containers cannot restart in session mode (use no restart policy)",
            )
    if not execution.disable_agent and not execution.agent_path:
        fail(join(where, "agentPath"), "must not be empty unless disableAgent is set")
