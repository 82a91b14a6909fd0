"""The whole configuration: one attribute per top-level section."""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import re
from typing import ClassVar

import attrs

from conch_container.config.audit import AuditConfig
from conch_container.config.auth import AuthConfig
from conch_container.config.docker import DockerConfig
from conch_container.config.errors import ConfigWarning
from conch_container.config.kinds import Section, Str
from conch_container.config.kubernetes import KubernetesConfig
from conch_container.config.legacy import AuthSection
from conch_container.config.log import LogConfig
from conch_container.config.schema import PLANNED, setting
from conch_container.config.security import SecurityConfig
from conch_container.config.services import (
    ConfigServerConfig,
    GeoIPConfig,
    HealthConfig,
    MetricsConfig,
)
from conch_container.config.session import SessionConfig
from conch_container.config.ssh import SSHConfig
from conch_container.config.sshproxy import SSHProxyConfig

#: ContainerSSH's backends; a plugin may provide others (docs/extending.md).
BACKENDS = ("docker", "kubernetes", "sshproxy")
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


def _backend_name(value: str) -> str | None:
    if _BACKEND_NAME.match(value):
        return None
    return "must be a backend name: docker, kubernetes, sshproxy or a plugin's name"


@attrs.frozen
class AppConfig:
    """The gateway's configuration, as read from a ContainerSSH configuration file.

    Build it with :func:`~conch_container.config.load_config` (or
    :func:`~conch_container.config.parse_config` for an already parsed
    mapping); ``AppConfig()`` is the all-defaults configuration.

    :ivar warnings: deprecations noticed while reading the file, for the
        caller to log; not part of the configuration's value (ignored by
        ``==`` and by :func:`~conch_container.config.dump_config`).
    """

    removed_keys: ClassVar[dict[str, str]] = {
        "listen": "moved to ssh.listen in ContainerSSH 0.4",
        "dockerrun": "the dockerrun backend was removed in ContainerSSH 0.5; use docker",
        # A file's kuberun section is translated before this table is
        # consulted (config/kuberun.py); only a configuration server's can get here.
        "kuberun": "a configuration server cannot send kuberun; send the kubernetes section",
    }

    ssh: SSHConfig = setting("ssh", Section(SSHConfig), SSHConfig(), doc="SSH server.")
    configserver: ConfigServerConfig = setting(
        "configserver",
        Section(ConfigServerConfig),
        ConfigServerConfig(),
        doc="Per-user configuration webhook (see docs/config-server.md).",
    )
    auth: AuthConfig = setting("auth", AuthSection(), AuthConfig(), doc="Authentication.")
    log: LogConfig = setting("log", Section(LogConfig), LogConfig(), doc="Logging.")
    metrics: MetricsConfig = setting(
        "metrics", Section(MetricsConfig), MetricsConfig(), doc="Metrics (see metrics.md)."
    )
    geoip: GeoIPConfig = setting(
        "geoip", Section(GeoIPConfig), GeoIPConfig(), doc="GeoIP lookups.", status=PLANNED
    )
    audit: AuditConfig = setting(
        "audit", Section(AuditConfig), AuditConfig(), doc="Audit log (see audit.md)."
    )
    health: HealthConfig = setting(
        "health", Section(HealthConfig), HealthConfig(), doc="Health check (see health.md)."
    )
    security: SecurityConfig = setting(
        "security",
        Section(SecurityConfig),
        SecurityConfig(),
        doc="Security policies: what users may run, set and send (see docs/security.md).",
    )
    session: SessionConfig = setting(
        "session",
        Section(SessionConfig),
        SessionConfig(),
        doc="Time limits of a connection: idle and absolute (see docs/timeouts.md).",
        extension=True,
    )
    backend: str = setting(
        "backend",
        Str(_backend_name, type_name="backend name"),
        "docker",
        doc="The backend users are put into: `docker`, `kubernetes`, `sshproxy` "
        "(planned), or the name of an installed backend plugin. A name no installed plugin "
        "provides stops the gateway at start-up.",
    )
    docker: DockerConfig = setting(
        "docker", Section(DockerConfig), DockerConfig(), doc="Docker backend."
    )
    kubernetes: KubernetesConfig = setting(
        "kubernetes",
        Section(KubernetesConfig),
        KubernetesConfig(),
        doc="Kubernetes backend (see kubernetes.md).",
    )
    sshproxy: SSHProxyConfig = setting(
        "sshproxy",
        Section(SSHProxyConfig),
        SSHProxyConfig(),
        doc="SSH proxy backend.",
        status=PLANNED,
    )
    warnings: tuple[ConfigWarning, ...] = attrs.field(default=(), eq=False, repr=False)
