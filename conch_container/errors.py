"""The one error type that crosses layers.

A :class:`ContainerSSHError` carries what the user may see and what the
operator needs, separately: only ``user_message`` is ever sent to an SSH client;
``explanation`` and ``details`` go to the log. This mirrors ContainerSSH's
``UserMessage``/``Explanation`` split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conch_container.codes import MessageCode

if TYPE_CHECKING:
    from conch_container.log.logger import CodeLogger

#: What the user sees when something behind the gateway fails and we have
#: nothing more specific to say (ContainerSSH's wording).
GENERIC_USER_MESSAGE = "Failed to initialize SSH session."
AUTH_UNAVAILABLE_USER_MESSAGE = "Authentication currently unavailable, please try again later."


class ContainerSSHError(Exception):
    """An error with a message code, a user-safe message and an operator explanation.

    :param code: the catalogue entry this error is logged under.
    :param user_message: safe to show the SSH user; never backend detail.
    :param explanation: what happened, for the log.
    :param details: structured fields for the log event.
    """

    def __init__(
        self,
        code: MessageCode,
        user_message: str,
        explanation: str,
        **details: Any,
    ) -> None:
        super().__init__(explanation)
        self.code = code
        self.user_message = user_message
        self.explanation = explanation
        self.details = details

    def log(self, log: CodeLogger, **fields: Any) -> None:
        """Log this error under its code with its details."""
        log.event(self.code, "{reason}", reason=self.explanation, **{**self.details, **fields})

    def __repr__(self) -> str:
        return f"ContainerSSHError({self.code.code}, {self.user_message!r}, {self.explanation!r})"


class RequestRejected(ContainerSSHError):
    """A request was refused by policy, not because anything failed.

    Whoever decides logs the refusal under its code, with the request's
    details, when it raises this; the SSH layer then answers the request with
    a plain failure (or refuses the channel) without logging it again, the
    way OpenSSH answers a request its configuration does not permit. That
    differs from other :class:`ContainerSSHError`\\ s
    raised by ``start``, whose ``user_message`` the client reads on stderr.
    """
