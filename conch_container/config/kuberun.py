"""The ``kuberun`` section of ContainerSSH 0.3, read and translated into ``kubernetes``.

ContainerSSH 0.3 ran users in Kubernetes with the ``kuberun`` backend; 0.4
replaced it with ``kubernetes`` and translated the old section on the fly
(its ``NewKubeRun``), 0.5 refused it. This gateway translates it, as 0.4 did,
when ``backend: kuberun`` selects it:

- ``kuberun.connection`` becomes ``kubernetes.connection`` (the same keys);
  ``connection.timeout`` becomes ``timeouts.http`` and ``timeout`` every other
  time limit;
- ``kuberun.pod`` becomes a ``session``-mode pod: ``namespace`` goes into
  ``metadata``, ``podSpec`` becomes ``spec``, and the guest agent stays off,
  since kuberun's images predate it;
- ``pod.disableCommand: true``, which refused every ``exec`` request, becomes
  ``security.command.mode: disable``, refused under ``KUBERUN_EXEC_DISABLED``;
- ``backend`` becomes ``kubernetes``.

The operator is told once, at load, with a ``KUBERUN_DEPRECATED`` warning.
Whatever the ``kubernetes`` section requires is then checked as if the file
had said it, but against the ``kuberun`` keys the operator wrote.

Three deliberate differences from ContainerSSH 0.4:

- ``connection.insecure: true`` (no certificate verification) is refused
  unless the operator also sets ``connection.allowInsecure: true``, this
  project's own key; then it is accepted with a ``KUBERUN_INSECURE`` warning;
- ``pod.disableAgent`` keeps the agent off whatever its value: ContainerSSH
  read the key inverted (``true`` switched the agent on);
- ``connection.timeout: 0s`` (0.3's default) is the ``kubernetes`` default of
  15 seconds, not "no limit": every request to the API server has a deadline.

A ``kuberun`` section with any other backend is read (a typo is still an
error) and ignored with a warning, as ContainerSSH ignored it. A
configuration server cannot send ``kuberun``: its answers are partial, while
the translation needs the whole section.
"""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from conch_container import messages
from conch_container.config.apistruct import ApiStruct, Reader
from conch_container.config.app import AppConfig
from conch_container.config.docker import AGENT_PATH, GUEST_IMAGE
from conch_container.config.errors import ConfigError
from conch_container.config.kinds import (
    Bool,
    Duration,
    Int,
    ListOf,
    Section,
    Str,
    StrMap,
    at_least,
)
from conch_container.config.kubernetes import (
    KubernetesConfig,
    KubernetesConnectionConfig,
    KubernetesPodConfig,
    KubernetesTimeoutConfig,
    validate_kubernetes,
)
from conch_container.config.kubernetesapi import POD_SPEC
from conch_container.config.schema import Context, fields_of, parse_section, setting

#: The section's key, and the ``backend`` value that selects it.
KUBERUN = "kuberun"

#: Where the deprecation notice sends operators.
DEPRECATION_NOTICE = "https://containerssh.io/deprecations/kuberun/"

#: The pod-spec key Go's YAML dumps of 0.3 files carry for ``serviceAccount``
#: (its Go field name), folded to lower case.
_DEPRECATED_SERVICE_ACCOUNT = "deprecatedserviceaccount"


@attrs.frozen
class KubeRunConnectionConfig(KubernetesConnectionConfig):
    """``kuberun.connection``: the ``kubernetes.connection`` keys and three of its own."""

    insecure: bool = setting(
        "insecure",
        Bool(),
        False,
        doc="Do not verify the API server's certificate; refused unless `allowInsecure` is set.",
    )
    timeout: float = setting(
        "timeout",
        Duration(),
        15.0,
        doc="One HTTP request to the API (becomes `kubernetes.timeouts.http`; `0s` means 15s).",
    )
    allow_insecure: bool = setting(
        "allowInsecure",
        Bool(),
        False,
        doc="Accept `insecure: true`, with a KUBERUN_INSECURE warning.",
        extension=True,
    )


class _KubeRunPodSpec(ApiStruct):
    """``kuberun.pod.podSpec``: a pod spec, also in the spelling 0.3 dumps wrote it.

    ContainerSSH 0.3's ``--dump-config`` wrote Go field names in lower case
    (``initcontainers``), which the case-insensitive reading takes, and one
    that is no JSON name at all: ``deprecatedserviceaccount``, the
    ``serviceAccount`` field.
    """

    def __init__(self) -> None:
        super().__init__(POD_SPEC, overlay=True)

    def read(self, reader: Reader, raw: object, path: str) -> dict[str, Any]:
        if isinstance(raw, Mapping):
            raw = {
                "serviceAccount" if str(key).lower() == _DEPRECATED_SERVICE_ACCOUNT else key: value
                for key, value in raw.items()
            }
        return super().read(reader, raw, path)


@attrs.frozen
class KubeRunPodConfig:
    """``kuberun.pod``: the pod each session gets."""

    namespace: str = setting("namespace", Str(), "default", doc="Namespace of the pods.")
    console_container_number: int = setting(
        "consoleContainerNumber", Int(at_least(0)), 0, doc="Index of the container programs run in."
    )
    pod_spec: dict[str, Any] = setting(
        "podSpec",
        _KubeRunPodSpec(),
        {"containers": [{"name": "shell", "image": GUEST_IMAGE}]},
        doc="Pod spec (becomes `kubernetes.pod.spec`).",
    )
    subsystems: dict[str, str] = setting(
        "subsystems",
        StrMap(),
        {"sftp": "/usr/lib/openssh/sftp-server"},
        doc="Subsystem name to program path.",
    )
    agent_path: str = setting("agentPath", Str(), AGENT_PATH, doc="Path of the guest agent.")
    disable_agent: bool = setting(
        "disableAgent", Bool(), False, doc="Ignored: the agent stays off under kuberun."
    )
    shell_command: tuple[str, ...] = setting(
        "shellCommand", ListOf(Str()), (), doc="Command run for `shell` requests."
    )
    disable_command: bool = setting(
        "disableCommand",
        Bool(),
        False,
        doc="Refuse `exec` requests (becomes `security.command.mode: disable`).",
    )


def _section(key: str, cls: type, doc: str) -> Any:
    return setting(key, Section(cls), cls(), doc=doc)


@attrs.frozen
class KubeRunConfig:
    """The ``kuberun`` section of ContainerSSH 0.3."""

    connection: KubeRunConnectionConfig = _section(
        "connection", KubeRunConnectionConfig, "API connection."
    )
    pod: KubeRunPodConfig = _section("pod", KubeRunPodConfig, "Pod settings.")
    timeout: float = setting(
        "timeout", Duration(), 60.0, doc="Every time limit but the HTTP request's."
    )


def split_kuberun(data: object, ctx: Context) -> tuple[object, object]:
    """The document without its ``kuberun`` section, and that section (``None`` if absent).

    JSON keys match in any letter case, as Go's decoder matches them.
    """
    if not isinstance(data, Mapping):
        return data, None
    rest: dict[Any, Any] = {}
    section: object = None
    for key, value in data.items():
        matches = isinstance(key, str) and (key.lower() if ctx.json else key) == KUBERUN
        if matches:
            section = value
        else:
            rest[key] = value
    return rest, section


def parse_kuberun(raw: object, ctx: Context) -> KubeRunConfig:
    """Read a ``kuberun`` section strictly, naming ``kuberun.*`` keys in errors."""
    return parse_section(KubeRunConfig, raw, ctx, KUBERUN)


def translate(kuberun: KubeRunConfig) -> KubernetesConfig:
    """The ``kubernetes`` section a ``kuberun`` section stands for (see the module documentation).

    Certificate verification is switched off only here, from an accepted
    ``insecure: true``: ``kubernetes`` has no key for it.
    """
    old = kuberun.connection
    connection = KubernetesConnectionConfig(
        **{
            field.name: getattr(old, field.name)
            for field, _ in fields_of(KubernetesConnectionConfig)
        },
        insecure_skip_tls_verify=old.insecure,
    )
    pod = kuberun.pod
    return KubernetesConfig(
        connection=connection,
        pod=KubernetesPodConfig(
            metadata={"namespace": pod.namespace, "generateName": "containerssh-"},
            spec=pod.pod_spec,
            console_container_number=pod.console_container_number,
            idle_command=(),
            shell_command=pod.shell_command,
            agent_path=pod.agent_path,
            disable_agent=True,
            subsystems=pod.subsystems,
            mode="session",
        ),
        timeouts=KubernetesTimeoutConfig(
            pod_start=kuberun.timeout,
            pod_stop=kuberun.timeout,
            command_start=kuberun.timeout,
            signal=kuberun.timeout,
            window=kuberun.timeout,
            http=old.timeout,
        ),
    )


#: Translated key paths and the ``kuberun`` keys they came from, most specific first.
_ORIGINS = (
    ("kubernetes.pod.spec", "kuberun.pod.podSpec"),
    ("kubernetes.pod", "kuberun.pod"),
    ("kubernetes.connection", "kuberun.connection"),
)


def _origin(key_path: str) -> str:
    for translated, written in _ORIGINS:
        if key_path == translated or key_path.startswith((translated + ".", translated + "[")):
            return written + key_path[len(translated) :]
    return KUBERUN


def _check_insecure(connection: KubeRunConnectionConfig, ctx: Context) -> None:
    if not connection.insecure:
        return
    key = "kuberun.connection.insecure"
    if not connection.allow_insecure:
        raise ConfigError(
            key,
            "connecting to Kubernetes without verifying its certificate lets anyone between "
            "the gateway and the API server impersonate it; set cacert or cacertFile instead, "
            "or set kuberun.connection.allowInsecure: true to accept the risk",
        )
    ctx.warn(
        messages.KUBERUN_INSECURE,
        key,
        "the API server's certificate is not verified (accepted by allowInsecure); set "
        "cacert or cacertFile and remove insecure",
    )


def apply_kuberun(config: AppConfig, raw: object, ctx: Context) -> AppConfig:
    """``config`` with its ``kuberun`` section (``raw``, ``None`` if absent) translated.

    A ``kubernetes`` section that the translation would replace must leave
    everything at its default (as the one a 0.4 ``--dump-config`` writes
    next to ``kuberun`` does): anything it sets would be lost.

    :raises ConfigError: naming the ``kuberun`` key at fault, or ``kubernetes``.
    """
    selected = config.backend == KUBERUN
    if raw is None and not selected:
        return config
    kuberun = parse_kuberun(raw, ctx)
    if not selected:
        ctx.warn(
            messages.KUBERUN_DEPRECATED,
            KUBERUN,
            f"the kuberun section of ContainerSSH 0.3 is ignored because the backend is "
            f"{config.backend}; remove it",
        )
        return config
    if config.kubernetes != KubernetesConfig():
        raise ConfigError(
            "kubernetes",
            "cannot be set with backend: kuberun, which is translated into it and would "
            "replace it; set backend: kubernetes and remove the kuberun section, or remove "
            "this one",
        )
    ctx.warn(
        messages.KUBERUN_DEPRECATED,
        KUBERUN,
        "the kuberun backend of ContainerSSH 0.3 is deprecated; it was translated into "
        f"backend: kubernetes. Move its settings to the kubernetes section ({DEPRECATION_NOTICE})",
    )
    _check_insecure(kuberun.connection, ctx)
    kubernetes = translate(kuberun)
    try:
        validate_kubernetes(kubernetes)
    except ConfigError as error:
        raise ConfigError(_origin(error.key_path), error.problem) from None
    security = config.security
    if kuberun.pod.disable_command:
        security = attrs.evolve(
            security,
            command=attrs.evolve(security.command, mode="disable"),
            kuberun_disable_command=True,
        )
    return attrs.evolve(config, backend="kubernetes", kubernetes=kubernetes, security=security)


def refuse_kuberun_backend(config: AppConfig) -> None:
    """Refuse ``backend: kuberun`` where it cannot be translated (a configuration server's answer).

    :raises ConfigError: naming ``backend``.
    """
    if config.backend == KUBERUN:
        raise ConfigError(
            "backend",
            "kuberun is translated from the configuration file only; a configuration server "
            "must send backend: kubernetes and the kubernetes section",
        )
