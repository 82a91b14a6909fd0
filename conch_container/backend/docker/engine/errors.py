"""The one error the Docker engine layer raises."""

from __future__ import annotations


class EngineError(Exception):
    """A Docker engine call failed.

    :ivar message: the engine's (or the HTTP client's) explanation, for logs only.
    :ivar status: the HTTP status of the engine's answer, if there was one.
    :ivar unsent: whether the request certainly never reached the engine (no
        connection could be made), so that it cannot have had any effect.
    """

    def __init__(self, message: str, status: int | None = None, unsent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.unsent = unsent

    @property
    def not_found(self) -> bool:
        """The engine answered 404: no such container, image or exec."""
        return self.status == 404
