"""The API server's ``Status`` objects: errors and exec results, in the real shape.

Clients decide what happened from ``reason`` and ``code`` (the official
Python client raises ``ApiException`` with the body; kubectl prints
``message``), so every refusal here carries the same fields a real API server
sends.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the server refuses; :attr:`status` is the body it answers with."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = failure(code, reason, message, details)


def failure(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``Status`` with ``status: Failure``."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        status["details"] = details
    return status


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})


def already_exists(name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'pods "{name}" already exists', {"name": name, "kind": "pods"}
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 for a pod whose spec is refused; ``causes`` are (reason, field, message)."""
    listed = "; ".join(f"{field}: {message}" for _, field, message in causes)
    return ApiError(
        422,
        "Invalid",
        f'Pod "{name}" is invalid: {listed}',
        {
            "name": name,
            "kind": "Pod",
            "causes": [
                {"reason": reason, "message": message, "field": field}
                for reason, field, message in causes
            ],
        },
    )


def exec_result(exit_code: int) -> dict[str, Any]:
    """What the status channel carries when a program ends: Success, or its exit code.

    The clients read a non-zero exit code from ``details.causes[0].message``
    (reason ``ExitCode``), as the kubelet sends it.
    """
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def stream_error(message: str) -> dict[str, Any]:
    """What the status channel carries when the program could not run at all."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}
