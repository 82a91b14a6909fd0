"""The logger every module uses: one call, one message code, named fields.

Usage::

    log = CodeLogger("conch_container.backend.docker").bind(connectionId=cid)
    log.event(messages.DOCKER_CONTAINER_CREATE, "Creating container from {image}", image=image)

Events go through Twisted's global log publisher, so ``twistd`` and trial see
them like any other event; the observers in :mod:`conch_container.log.observers`
render them. Field names follow ContainerSSH's log labels (``connectionId``,
``remoteAddr``, ``username``, ``channelId``, ``containerId``, ``backend``,
``url``, ``authtype``, ``reason``, ``signal``, ``width``, ``height``) so that
``ljson`` output is interchangeable with ContainerSSH's.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from conch_container.codes import Level, MessageCode

#: Field names whose values are never written to a log line, whatever the caller passes.
SECRET_FIELDS = frozenset(
    {
        "password",
        "passwordBase64",
        "privateKey",
        "private_key",
        "secret",
        "secretKey",
        "clientSecret",
        "token",
        "bearerToken",
        "authorization",
        "registryAuth",
    }
)
REDACTED = "<redacted>"

#: Event keys that carry our structure; the observers read them.
CODE_KEY = "code"
LEVEL_KEY = "cs_level"
DETAILS_KEY = "cs_details"
#: The least severe level written for this event's connection, when it has its own.
THRESHOLD_KEY = "cs_threshold"


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with every secret-named value replaced."""
    return {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in fields.items()}


class CodeLogger:
    """A :class:`twisted.logger.Logger` that insists on a message code.

    :param namespace: the Twisted log namespace (usually the module name).
    :param fields: context fields added to every event (connection id, ...).
    :param observer: where events go; the global publisher by default.
      Tests pass an ``EventLoggingObserver`` or a list's ``append``.
    :param level: the least severe level written for these events, in place
      of the log output's (a connection's ``log.level`` from a configuration
      server); ``None`` for the output's own.
    """

    def __init__(
        self,
        namespace: str = "conch_container",
        fields: dict[str, Any] | None = None,
        observer: ILogObserver | None = None,
        level: Level | None = None,
    ) -> None:
        self._namespace = namespace
        self._fields = dict(fields or {})
        self._observer = observer
        self._level = level
        self._logger = Logger(namespace=namespace, observer=observer)

    @property
    def level(self) -> Level | None:
        """The level this logger's events are filtered at, when it has its own."""
        return self._level

    def at_level(self, level: Level | None) -> CodeLogger:
        """This logger, its events filtered at ``level`` instead of the output's level.

        Events are still filtered where they are written: the observer reads
        the level each event carries, so a connection may log more (``debug``)
        or less than the rest of the gateway.
        """
        return CodeLogger(self._namespace, self._fields, self._observer, level)

    @property
    def fields(self) -> dict[str, Any]:
        """The context fields bound to this logger."""
        return dict(self._fields)

    def bind(self, **fields: Any) -> CodeLogger:
        """A logger that adds ``fields`` to every event, on top of this one's."""
        merged = dict(self._fields)
        merged.update({k: v for k, v in fields.items() if v is not None})
        return CodeLogger(self._namespace, merged, self._observer, self._level)

    def failure(
        self,
        message: MessageCode,
        format: str,
        failure: Failure | None = None,
        *,
        level: Level | None = None,
        **fields: Any,
    ) -> None:
        """Log an unexpected failure, as :meth:`twisted.logger.Logger.failure` does.

        ``reason`` is the failure's message (unless given); the failure is
        attached for the observers, which show its traceback only at debug
        level and never to the SSH user.

        :param failure: what failed; by default the exception being handled.
        """
        if failure is None:
            failure = Failure()
        fields.setdefault("reason", failure.getErrorMessage())
        self.event(message, format, level=level, failure=failure, **fields)

    def event(
        self,
        message: MessageCode,
        format: str,
        *,
        level: Level | None = None,
        failure: Failure | None = None,
        **fields: Any,
    ) -> None:
        """Log one event.

        :param message: the code from :mod:`conch_container.messages`.
        :param format: a PEP 3101 format string over ``fields`` (never pre-formatted).
        :param level: overrides the code's default level (retries log lower
            than the final failure).
        :param failure: an exception to attach; only its text is rendered, and
            only at debug level does a traceback appear.
        """
        effective = message.level if level is None else level
        details = redact({**self._fields, **fields})
        extra: dict[str, Any] = {}
        if failure is not None:
            extra["log_failure"] = failure
        if self._level is not None:
            extra[THRESHOLD_KEY] = self._level
        self._logger.emit(
            effective.twisted_level,
            format,
            **details,
            **extra,
            **{CODE_KEY: message.code, LEVEL_KEY: effective, DETAILS_KEY: tuple(details)},
        )
