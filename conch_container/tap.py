"""``twistd containerssh``: options and the composition root.

:class:`Options` loads and validates everything that can be wrong with the
configuration (the file, the users files, the host keys, the log output)
*before* ``twistd`` daemonises, so an operator sees ``CORE_CONFIG_ERROR`` and
a non-zero exit status instead of a daemon that dies later; then it claims
the gateway's instance id (:mod:`conch_container.instance`). :func:`makeService`
only assembles the service tree, in ContainerSSH's order: backend,
authentication, audit log, session registry, SSH listener, then the health
endpoint when enabled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from prometheus_client import disable_created_metrics
from twisted.application.service import IService
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.audit.build import build_audit_log
from conch_container.audit.service import AuditLog
from conch_container.audit.storage import check_directories
from conch_container.auth.factory import AuthConfigError, build_authenticators
from conch_container.auth.static import StaticUsersError
from conch_container.backend.dispatch import DispatchingBackend
from conch_container.backend.registry import (
    BackendNotAvailable,
    check_backend_config,
    find_backend_factory,
)
from conch_container.config import AppConfig, ConfigError, load_config
from conch_container.config.hostkeys import (
    HostKeyGenerationError,
    HostKeyWriteError,
    generate_and_store_host_key,
    with_host_key,
)
from conch_container.endpoints import check_endpoints, endpoint_services
from conch_container.errors import ContainerSSHError
from conch_container.httpserver import TLSConfigError
from conch_container.instance import InstanceClaim, claim_instance_id
from conch_container.interfaces import IBackendFactory, IBackendLifecycle
from conch_container.listener import ListenerService
from conch_container.log import CodeLogger
from conch_container.log.setup import LogOutput, LogSetupError, emit_early, start_logging
from conch_container.metrics import NULL_METRICS, GatewayMetrics, Metrics
from conch_container.security import SecurityBackend
from conch_container.service import ComponentService, GatewayService, SessionRegistry
from conch_container.ssh.factory import ContainerSSHFactory
from conch_container.webhook.client import WebhookConfigError
from conch_container.webhook.connectionconfig import ConfigServerSource

#: How long a graceful stop may take before containers are removed by force (ContainerSSH: 20 s).
SHUTDOWN_DEADLINE = 20.0


class Options(usage.Options):
    """Command line of ``twistd containerssh``."""

    synopsis = "[-c config.yaml]"
    longdesc = (
        "Runs the SSH gateway described by a ContainerSSH configuration file "
        "(YAML, or JSON when the name ends in .json)."
    )
    optParameters = [
        ["config", "c", "config.yaml", "The configuration file."],
        [
            "state-dir",
            None,
            None,
            "Where this gateway keeps its instance id, which lets a restart remove the "
            "containers a killed run left behind (default: the configuration file's directory).",
        ],
    ]

    def __init__(self, reactor: Any = None) -> None:
        """:param reactor: what the options' objects run on (tests); the global one by default."""
        super().__init__()
        self._given_reactor = reactor
        self.config: AppConfig | None = None
        self.log_output: LogOutput | None = None
        self.authenticators: Any = None
        self.backend_factory: Any = None
        #: The configuration server, or None when ``configserver.url`` is empty.
        self.config_source: ConfigServerSource | None = None
        #: What the gateway counts; records nothing unless ``metrics.enable``.
        self.metrics: Metrics = NULL_METRICS
        #: This run's instance id, held until the process ends or the service tree stops.
        self.instance: InstanceClaim | None = None

    @property
    def reactor(self) -> Any:
        """The reactor given to the constructor, or the global one."""
        return self._given_reactor if self._given_reactor is not None else _reactor()

    def postOptions(self) -> None:
        path = os.path.abspath(self["config"])
        self["config"] = path
        try:
            config = load_config(path)
            # What only the backend understands is checked before daemonising too.
            config = check_backend_config(config)
            # And whether the audit storage's directory takes files, on this machine.
            check_directories(config.audit)
        except BackendNotAvailable as error:
            emit_early(
                messages.CORE_CONFIG_ERROR, "Invalid configuration: {reason}", reason=str(error)
            )
            raise usage.UsageError(str(error)) from None
        except ConfigError as error:
            for warning in error.warnings:
                emit_early(
                    warning.code, "{key}: {reason}", key=warning.key_path, reason=warning.message
                )
            emit_early(
                messages.CORE_CONFIG_ERROR,
                "Invalid configuration in {file}: {reason}",
                file=path,
                reason=str(error),
            )
            raise usage.UsageError(f"{path}: {error}") from None
        try:
            # With the reactor, SIGHUP reopens a log file (for logrotate).
            self.log_output = start_logging(config.log, reactor=self.reactor)
        except LogSetupError as error:
            raise usage.UsageError(error.explanation) from None
        log = CodeLogger("conch_container.tap", observer=self.log_output.observer)
        log.event(messages.CORE_CONFIG_FILE, "Using configuration file {file}", file=path)
        for warning in config.warnings:
            log.event(warning.code, "{key}: {reason}", key=warning.key_path, reason=warning.message)
        try:
            self.backend_factory = find_backend_factory(config.backend)
            self.config = ensure_host_key(config, path, log)
            self.metrics = build_metrics(config)
            self.authenticators = build_authenticators(
                self.config.auth, reactor=self.reactor, log=log, metrics=self.metrics
            )
            self.config_source = ConfigServerSource.from_config(
                self.config, reactor=self.reactor, log=log, metrics=self.metrics
            )
            check_endpoints(self.config)
        except (
            BackendNotAvailable,
            AuthConfigError,
            StaticUsersError,
            WebhookConfigError,
            TLSConfigError,
        ) as error:
            log.event(
                messages.CORE_CONFIG_ERROR, "Invalid configuration: {reason}", reason=str(error)
            )
            raise usage.UsageError(str(error)) from None
        # Claimed last, once nothing can refuse the options. Before twistd
        # daemonises: the child it forks shares the lock, so the parent's
        # exit leaves it held.
        self.instance = claim_instance_id(path, self["state-dir"], log)


def build_metrics(config: AppConfig) -> Metrics:
    """The gateway's metrics: real ones when ``metrics.enable``, else ones that record nothing."""
    if not config.metrics.enable:
        return NULL_METRICS
    # ContainerSSH exposes no ``_created`` series. prometheus-client would add
    # one per counter and histogram series, doubling what Prometheus stores
    # for nothing a ContainerSSH dashboard or alert reads. (The switch is the
    # library's own, process-wide; this process is the gateway.)
    disable_created_metrics()
    return GatewayMetrics()


def watch_audit_backlog(metrics: Metrics, audit: AuditLog | None) -> None:
    """Expose the upload backlog of an audit storage that uploads (S3)."""
    backlog = getattr(audit.storage, "backlog", None) if audit is not None else None
    if backlog is not None:
        metrics.watch_audit_backlog(backlog)


def ensure_host_key(config: AppConfig, path: str, log: CodeLogger) -> AppConfig:
    """Generate and store a host key when the configuration has none (as ContainerSSH does).

    :raises usage.UsageError: when no key could be generated.
    """
    if config.ssh.hostkeys:
        return config
    log.event(
        messages.CORE_NO_HOST_KEYS,
        "No host keys configured; generating one and adding it to {file}",
        file=path,
    )
    try:
        key = generate_and_store_host_key(path, log=log)
    except HostKeyGenerationError as error:
        log.event(
            messages.CORE_HOST_KEY_GENERATION_FAILED,
            "Cannot generate a host key: {reason}",
            reason=str(error),
        )
        raise usage.UsageError(f"cannot generate a host key: {error}") from None
    except HostKeyWriteError as error:
        log.event(
            messages.CORE_CONFIG_CANNOT_WRITE_FILE,
            "Cannot add the new host key to {file} ({reason}); using it for this run only",
            file=error.path,
            reason=error.reason,
        )
        key = error.key
    return with_host_key(config, key)


class _RootService(GatewayService):
    """The root, which also hands ``twistd`` our log observer.

    ``twistd`` installs an application's :class:`ILogObserver` component in
    place of its own text log, and it calls ``setServiceParent`` with the
    application: that is the one moment the plugin can reach it.
    """

    log_observer: Any = None

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)


def makeService(options: Options, reactor: Any = None) -> IService:
    """Assemble the gateway's service tree from validated options.

    :param reactor: by default the one the options were made with.
    """
    if reactor is None:
        reactor = options.reactor
    config = options.config
    claim = options.instance
    assert config is not None and options.log_output is not None and claim is not None, (
        "postOptions ran"
    )
    log = CodeLogger("conch_container")
    instance_id = claim.instance_id

    root = _RootService(log, on_crash=_exit_on_crash(reactor))
    root.log_observer = options.log_output.observer
    # The first child stops last: the id is given up only once every
    # container of this run is gone (or given up on), so that a gateway
    # started afterwards with the same state takes it over.
    ComponentService("instance", None, claim.release).setServiceParent(root)

    # The static backend now; another one when a configuration server first chooses it.
    backend = DispatchingBackend(
        reactor,
        log,
        instance_id,
        config,
        metrics=options.metrics,
        factory_for=_static_first(options.backend_factory),
    )
    authenticators = options.authenticators
    registry = SessionRegistry(reactor, log, deadline=SHUTDOWN_DEADLINE)
    audit = build_audit_log(reactor, log, config.audit, deadline=SHUTDOWN_DEADLINE)
    watch_audit_backlog(options.metrics, audit)
    try:
        factory = ContainerSSHFactory(
            config,
            authenticators,
            SecurityBackend(backend),
            registry,
            reactor,
            log,
            instance_id,
            audit=audit,
            config_source=options.config_source,
            metrics=options.metrics,
        )
    except ContainerSSHError as error:
        emit_early(error.code, "Cannot start the SSH server: {reason}", reason=error.explanation)
        raise SystemExit(f"cannot start the SSH server: {error.explanation}") from None
    registry.add_closer(lambda: factory.close_all("The server is shutting down."))
    registry.add_closer(factory.wait_closed)
    lifecycle = IBackendLifecycle(backend, None)
    if lifecycle is not None:
        registry.add_last_resort(lifecycle.remove_all)
        # The backend starts first (the Docker backend removes what a killed
        # earlier run left behind) and stops last, after every connection closed.
        ComponentService("backend", lifecycle.start, lifecycle.stop).setServiceParent(root)
    ComponentService("auth", authenticators.start, authenticators.stop).setServiceParent(root)
    if options.config_source is not None:
        ComponentService("configserver", None, options.config_source.close).setServiceParent(root)
    if audit is not None:
        # Before the listener: the storage recovers what a killed run left
        # behind first; after it stopped: every stream of a closed
        # connection is written before the storage stops.
        audit.setServiceParent(root)
    registry.setServiceParent(root)
    ListenerService(reactor, config.ssh.listen, factory, log).setServiceParent(root)
    # Last, health last of all: it starts answering once everything else
    # runs, and is the first to stop, so a probe never sees a half-started
    # gateway as ok.
    for endpoint in endpoint_services(
        config, metrics=options.metrics, healthy=root.all_running, log=log, reactor=reactor
    ):
        endpoint.setServiceParent(root)
    return root


def _static_first(static: IBackendFactory) -> Callable[[str], IBackendFactory]:
    """Finds factories by name, with the one the options found for the static backend."""

    def factory_for(name: str) -> IBackendFactory:
        return static if name == static.name else find_backend_factory(name)

    return factory_for


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _exit_on_crash(reactor: Any) -> Any:
    """Stop the process with exit status 1 when a service cannot start.

    ``twistd`` ignores what ``startService`` returns and exits 0 after a
    plain ``reactor.stop()``, which would hide a failed start from a
    supervisor; so after the orderly shutdown the process exits with 1.
    """

    def crashed(failure: Failure) -> None:
        reactor.addSystemEventTrigger("after", "shutdown", _exit_failed)
        reactor.callWhenRunning(reactor.stop)

    return crashed


def _exit_failed() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(1)
