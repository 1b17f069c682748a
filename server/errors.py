"""Errors the web layer turns into HTTP answers. Mapping to status codes happens in one
middleware (``server.app``); handlers raise, they never build error responses themselves.

On the Mastodon-compatible API the body is Mastodon's ``{"error": "..."}`` (plus
``error_description`` for OAuth endpoints, RFC 6749 §5.2).
"""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status and a message meant for the client."""

    status = 400

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        oauth_error: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.oauth_error = oauth_error
        # More fields for the error body where Mastodon sends them (e.g. existing_domain_block).
        self.extra = extra or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    """No valid credentials (401)."""

    status = 401


class Forbidden(ApiError):
    """Valid credentials that do not allow this (403), including a missing OAuth scope."""

    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    status = 410


class PayloadTooLarge(ApiError):
    status = 413


class Unprocessable(ApiError):
    """Well-formed but invalid input (422), Mastodon's answer to validation failures."""

    status = 422


class ValidationFailed(Unprocessable):
    """Mastodon's model validation failure: ``{"error": "Validation failed: ...", "details":
    {field: [{"error": "ERR_TAKEN", "description": "..."}]}}`` (the sign-up form reads it)."""

    def __init__(self, message: str, details: dict[str, list[dict[str, str]]]) -> None:
        super().__init__(message)
        self.details = details


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
