"""The error and warning types of configuration loading."""

from __future__ import annotations

import attrs

from conch_container.codes import MessageCode


class ConfigError(Exception):
    """The configuration is invalid.

    ``str(error)`` is ``"<key path>: <problem>"`` (just the problem when the
    error concerns the file as a whole), ready to show the operator.

    :ivar key_path: the dotted path of the offending key in ContainerSSH
        spelling, list items as ``[n]``: ``docker.execution.idleCommand[0]``;
        ``""`` for the whole file.
    :ivar problem: what is wrong with it.
    :ivar warnings: what loading noticed before it failed, for the caller to
        report with the error: a ``backend: kuberun`` file is refused as the
        Kubernetes backend it was translated into, which only its
        ``KUBERUN_DEPRECATED`` warning explains.
    """

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(key_path, problem)
        self.key_path = key_path
        self.problem = problem
        self.warnings: tuple[ConfigWarning, ...] = ()

    def __str__(self) -> str:
        if self.key_path:
            return f"{self.key_path}: {self.problem}"
        return self.problem

    def __repr__(self) -> str:
        return f"ConfigError({self.key_path!r}, {self.problem!r})"


@attrs.frozen
class ConfigWarning:
    """Something in the configuration still works but should be changed.

    The loader never logs; it hands these to its caller, which logs each one
    under its code, for example::

        for warning in config.warnings:
            log.event(warning.code, "{key}: {reason}",
                      key=warning.key_path, reason=warning.message)

    :ivar code: the catalogue entry to log the warning under
        (``CONFIG_AUTH_URL_DEPRECATED``, ``CONFIG_DEPRECATED_KEY``).
    :ivar key_path: the dotted path of the key concerned.
    :ivar message: what to change, for the operator.
    """

    code: MessageCode
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.key_path}: {self.message}"
