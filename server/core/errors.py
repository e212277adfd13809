"""The one error type handlers raise; rendered as the contract's error shape.

In the core because the rules that refuse input (topics, numbers) live here
too, and both `server/` and `push/` answer with it.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def invalid(field: str, message: str) -> ApiError:
    """422 for one field, naming it in `details` so clients can point at it."""
    return ApiError(422, "invalid_field", f"{field}: {message}", {"field": field})
