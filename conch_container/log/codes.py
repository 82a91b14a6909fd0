"""The value type of the message-code catalogue."""

from __future__ import annotations

import attrs

from conch_container.log.levels import Level


@attrs.frozen
class MessageCode:
    """One stable message code.

    :ivar code: the code as it appears in logs (``DOCKER_CONTAINER_CREATE``).
    :ivar level: the level the event is logged at unless the call site overrides it.
    :ivar section: the catalogue section (``Docker``, ``SSH``, ...).
    :ivar explanation: one or two sentences for the operator.
    :ivar own: True for codes this project adds to ContainerSSH's set.
    """

    code: str
    level: Level
    section: str
    explanation: str
    own: bool = False

    def __str__(self) -> str:
        return self.code
