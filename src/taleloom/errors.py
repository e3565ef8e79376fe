"""User-facing errors: every one says what went wrong, which input caused it, and what to do.

The CLI prints them without a stack trace; the HTTP API turns them into 4xx JSON bodies.
"""

from __future__ import annotations


class TaleloomError(Exception):
    """An error a person can act on. `hint` says what to do next."""

    status_code = 400  # HTTP status the server maps this error to

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


class BadInputError(TaleloomError, ValueError):
    """The user's input (file, option, text) is not usable. Also a ValueError, so engine code that
    documents ValueError for a bad argument can raise this one and keep its hint."""

    status_code = 422


class TooLargeError(BadInputError):
    status_code = 413


class ModelNotFoundError(TaleloomError):
    """A model folder, checkpoint or server is missing or unreadable."""

    status_code = 503


class BackendError(TaleloomError):
    """A backend failed at run time (server error, validation failed after retries...)."""

    status_code = 502


class CutOffAnswerError(BackendError):
    """A JSON answer stopped at the caller's own max_tokens before it closed. A book stage sets that limit
    itself and retries it like any backend failure (hence a BackendError); an API client chose the limit,
    so for it this is its own request to fix (422, "raise max_tokens"), not a failing server (issue 10, row 8)."""

    status_code = 422


def choice_error(kind: str, value: object, known: list[str] | tuple[str, ...]) -> BadInputError:
    """Uniform message for an unknown name: lists the known ones."""
    return BadInputError(f"unknown {kind} {value!r}", f"choose one of: {', '.join(sorted(known))}")
