"""The ``kubernetes`` section: the Kubernetes backend's API connection, pod and time limits.

``pod.metadata`` and ``pod.spec`` are Kubernetes API objects (camelCase API
names), read against the generated field tables of
:mod:`~conch_container.config.kubernetesapi`: as ContainerSSH decodes them
strictly, an unknown key is an error, and so is a value of the wrong type,
naming its key path.
"""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import os
from typing import Any

import attrs

from conch_container.config.apistruct import ApiStruct
from conch_container.config.docker import AGENT_PATH, GUEST_IMAGE, IDLE_COMMAND, SHELL_COMMAND
from conch_container.config.kinds import (
    Bool,
    Choice,
    Duration,
    Float,
    Int,
    ListOf,
    Section,
    Str,
    StrMap,
    at_least,
)
from conch_container.config.kubernetesapi import OBJECT_META, POD_SPEC
from conch_container.config.schema import fail, join, setting
from conch_container.config.values import is_pem


@attrs.frozen
class KubernetesConnectionConfig:
    """How to reach the Kubernetes API server."""

    host: str = setting("host", Str(), "kubernetes.default.svc", doc="API server host[:port].")
    path: str = setting("path", Str(), "/api", doc="API path prefix.")
    username: str = setting("username", Str(), "", doc="Basic-auth username.")
    password: str = setting("password", Str(), "", doc="Basic-auth password.")
    server_name: str = setting("serverName", Str(), "", doc="TLS server name (SNI) to expect.")
    cert_file: str = setting("certFile", Str(), "", doc="Client certificate file.")
    key_file: str = setting("keyFile", Str(), "", doc="Client key file.")
    cacert_file: str = setting("cacertFile", Str(), "", doc="CA certificate file.")
    cert: str = setting("cert", Str(), "", doc="Client certificate (PEM text).")
    key: str = setting("key", Str(), "", doc="Client key (PEM text).")
    cacert: str = setting("cacert", Str(), "", doc="CA certificate (PEM text).")
    bearer_token: str = setting("bearerToken", Str(), "", doc="Bearer token.")
    bearer_token_file: str = setting(
        "bearerTokenFile", Str(), "", doc="File holding the bearer token."
    )
    qps: float = setting("qps", Float(at_least(0)), 5.0, doc="Requests per second allowed.")
    burst: int = setting("burst", Int(at_least(0)), 10, doc="Request burst allowed.")
    kubeconfig: str = setting(
        "kubeconfig",
        Str(),
        "",
        doc="A kubeconfig file to take the API server and credentials from, instead of "
        "the keys above (which must then be left unset, except `qps` and `burst`).",
        extension=True,
    )
    context: str = setting(
        "context",
        Str(),
        "",
        doc="The kubeconfig context to use; empty: the file's `current-context`.",
        extension=True,
    )
    #: Do not verify the API server's certificate. No key sets it: only a
    #: ``kuberun`` section translated with ``insecure: true`` and the
    #: operator's explicit ``allowInsecure`` (:mod:`~conch_container.config.kuberun`).
    insecure_skip_tls_verify: bool = attrs.field(default=False)


@attrs.frozen
class KubernetesPodConfig:
    """The pod each user gets."""

    metadata: dict[str, Any] = setting(
        "metadata",
        ApiStruct(OBJECT_META, overlay=True),
        {"namespace": "default", "generateName": "containerssh-"},
        doc="Pod metadata; `namespace` is required. Checked as strictly as the Kubernetes "
        "API decodes it (see Value formats).",
    )
    spec: dict[str, Any] = setting(
        "spec",
        ApiStruct(POD_SPEC, overlay=True),
        {"containers": [{"name": "shell", "image": GUEST_IMAGE}]},
        doc="Pod spec; at least one container with an image. Checked as strictly as the "
        "Kubernetes API decodes it: unknown keys and wrong types are errors.",
    )
    console_container_number: int = setting(
        "consoleContainerNumber",
        Int(at_least(0)),
        0,
        doc="Index of the container programs run in.",
    )
    idle_command: tuple[str, ...] = setting(
        "idleCommand", ListOf(Str()), IDLE_COMMAND, doc="Command run while idle."
    )
    shell_command: tuple[str, ...] = setting(
        "shellCommand", ListOf(Str()), SHELL_COMMAND, doc="Command run for `shell` requests."
    )
    agent_path: str = setting("agentPath", Str(), AGENT_PATH, doc="Path of the guest agent.")
    disable_agent: bool = setting("disableAgent", Bool(), False, doc="Run without the agent.")
    subsystems: dict[str, str] = setting(
        "subsystems",
        StrMap(),
        {"sftp": "/usr/lib/openssh/sftp-server"},
        doc="Subsystem name to program path.",
    )
    mode: str = setting(
        "mode",
        Choice("connection", "session", "persistent"),
        "connection",
        doc="`connection`, `session` or `persistent`.",
    )
    create_missing_pods: bool = setting(
        "createMissingPods",
        Bool(),
        False,
        doc="In `persistent` mode, create the named pod if it does not exist.",
    )
    expose_auth_metadata_as_env: dict[str, str] = setting(
        "exposeAuthMetadataAsEnv", StrMap(), {}, doc="Metadata key to environment variable."
    )
    expose_auth_metadata_as_labels: dict[str, str] = setting(
        "exposeAuthMetadataAsLabels", StrMap(), {}, doc="Metadata key to pod label."
    )
    expose_auth_metadata_as_annotations: dict[str, str] = setting(
        "exposeAuthMetadataAsAnnotations", StrMap(), {}, doc="Metadata key to pod annotation."
    )


@attrs.frozen
class KubernetesTimeoutConfig:
    """Time limits of Kubernetes operations."""

    pod_start: float = setting("podStart", Duration(), 60.0, doc="Pod creation until ready.")
    pod_stop: float = setting("podStop", Duration(), 60.0, doc="Pod removal.")
    command_start: float = setting("commandStart", Duration(), 60.0, doc="Program start.")
    signal: float = setting("signal", Duration(), 60.0, doc="Signal delivery.")
    window: float = setting("window", Duration(), 60.0, doc="Terminal resize.")
    http: float = setting("http", Duration(), 15.0, doc="One HTTP request to the API.")


@attrs.frozen
class KubernetesConfig:
    """The Kubernetes backend: API connection, the pod each user gets, time limits."""

    connection: KubernetesConnectionConfig = setting(
        "connection",
        Section(KubernetesConnectionConfig),
        KubernetesConnectionConfig(),
        doc="API connection.",
    )
    pod: KubernetesPodConfig = setting(
        "pod", Section(KubernetesPodConfig), KubernetesPodConfig(), doc="Pod settings."
    )
    timeouts: KubernetesTimeoutConfig = setting(
        "timeouts",
        Section(KubernetesTimeoutConfig),
        KubernetesTimeoutConfig(),
        doc="Time limits.",
    )


def _validate_connection(connection: KubernetesConnectionConfig, path: str) -> None:
    if not connection.host:
        fail(join(path, "host"), "must not be empty")
    if bool(connection.cert) != bool(connection.key):
        fail(path, "cert and key must be set together")
    if bool(connection.cert_file) != bool(connection.key_file):
        fail(path, "certFile and keyFile must be set together")
    for key in ("cert", "key", "cacert"):
        value = getattr(connection, key)
        if value and not is_pem(value):
            fail(join(path, key), "must be PEM text")
    for key, attribute in (
        ("certFile", "cert_file"),
        ("keyFile", "key_file"),
        ("cacertFile", "cacert_file"),
        ("bearerTokenFile", "bearer_token_file"),
    ):
        filename = getattr(connection, attribute)
        if filename and not os.path.isfile(filename):
            fail(join(path, key), f"file {filename} does not exist")
    if connection.kubeconfig and not os.path.isfile(connection.kubeconfig):
        fail(join(path, "kubeconfig"), f"file {connection.kubeconfig} does not exist")
    if connection.context and not connection.kubeconfig:
        fail(join(path, "context"), "only allowed with kubeconfig")


def _validate_pod(pod: KubernetesPodConfig, path: str) -> None:
    if not pod.metadata.get("namespace"):
        fail(join(path, "metadata.namespace"), "must not be empty")
    if pod.mode == "persistent" and not pod.metadata.get("name"):
        fail(join(path, "metadata.name"), "must name the pod in persistent mode")
    if pod.create_missing_pods and pod.mode != "persistent":
        fail(join(path, "createMissingPods"), "only allowed in persistent mode")
    containers = pod.spec.get("containers")
    if not isinstance(containers, list) or not containers:
        fail(join(path, "spec.containers"), "at least one container is required")
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("image"):
            fail(join(path, f"spec.containers[{index}].image"), "an image is required")
    if pod.console_container_number >= len(containers):
        fail(join(path, "consoleContainerNumber"), "there is no container with this number")
    creates_idle_pod = pod.mode == "connection" or (
        pod.mode == "persistent" and pod.create_missing_pods
    )
    if creates_idle_pod and not pod.idle_command:
        fail(join(path, "idleCommand"), f"must not be empty in {pod.mode} mode")
    if pod.mode == "connection" and not pod.shell_command:
        fail(join(path, "shellCommand"), "must not be empty in connection mode")
    if pod.mode == "session":
        if not pod.disable_agent and not pod.shell_command:
            fail(join(path, "shellCommand"), "must not be empty in session mode with the agent")
        if pod.spec.get("restartPolicy") not in (None, "", "Never"):
            fail(join(path, "spec.restartPolicy"), 'must be empty or "Never" in session mode')
    if not pod.disable_agent and not pod.agent_path:
        fail(join(path, "agentPath"), "must not be empty unless disableAgent is set")


def validate_kubernetes(config: KubernetesConfig, path: str = "kubernetes") -> None:
    """The checks ContainerSSH makes when ``kubernetes`` is the selected backend.

    :raises ConfigError: naming the offending key.
    """
    _validate_connection(config.connection, join(path, "connection"))
    _validate_pod(config.pod, join(path, "pod"))
