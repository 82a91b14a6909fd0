"""The configuration: ContainerSSH's file format, read into frozen attrs classes.

Typical use::

    from conch_container.config import ConfigError, load_config

    try:
        config = load_config("config.yaml")
    except ConfigError as error:
        ...  # str(error) is "key.path: problem"
    for warning in config.warnings:
        log.event(warning.code, "{key}: {reason}",
                  key=warning.key_path, reason=warning.message)

Attribute names are the YAML keys in snake_case (``serverVersion`` becomes
``server_version``), durations are float seconds, lists are tuples.
"""

from conch_container.config.app import AppConfig
from conch_container.config.audit import AuditConfig
from conch_container.config.auth import (
    AuthConfig,
    AuthWebhookClientConfig,
    AuthzConfig,
    GSSAPIAuthConfig,
    KerberosConfig,
    KeyboardInteractiveAuthConfig,
    PasswordAuthConfig,
    PublicKeyAuthConfig,
    StaticUsersConfig,
)
from conch_container.config.docker import (
    DockerConfig,
    DockerConnectionConfig,
    DockerExecutionConfig,
    DockerTimeoutConfig,
)
from conch_container.config.dump import dump_config
from conch_container.config.durations import format_duration, parse_duration
from conch_container.config.errors import ConfigError, ConfigWarning
from conch_container.config.http import HTTPClientConfig, HTTPServerConfig
from conch_container.config.kubernetes import KubernetesConfig
from conch_container.config.loader import (
    apply_override,
    load_config,
    merge_config,
    parse_config,
)
from conch_container.config.log import LogConfig, SyslogConfig
from conch_container.config.security import SecurityConfig
from conch_container.config.services import (
    ConfigServerConfig,
    GeoIPConfig,
    HealthConfig,
    MetricsConfig,
)
from conch_container.config.ssh import SSHConfig
from conch_container.config.sshproxy import SSHProxyConfig
from conch_container.config.validate import validate_config

__all__ = [
    "AppConfig",
    "AuditConfig",
    "AuthConfig",
    "AuthWebhookClientConfig",
    "AuthzConfig",
    "ConfigError",
    "ConfigServerConfig",
    "ConfigWarning",
    "DockerConfig",
    "DockerConnectionConfig",
    "DockerExecutionConfig",
    "DockerTimeoutConfig",
    "GSSAPIAuthConfig",
    "GeoIPConfig",
    "HTTPClientConfig",
    "HTTPServerConfig",
    "HealthConfig",
    "KerberosConfig",
    "KeyboardInteractiveAuthConfig",
    "KubernetesConfig",
    "LogConfig",
    "MetricsConfig",
    "PasswordAuthConfig",
    "PublicKeyAuthConfig",
    "SSHConfig",
    "SSHProxyConfig",
    "SecurityConfig",
    "StaticUsersConfig",
    "SyslogConfig",
    "apply_override",
    "dump_config",
    "format_duration",
    "load_config",
    "merge_config",
    "parse_config",
    "parse_duration",
    "validate_config",
]
