"""Dependencies shared by the routes, as `Annotated` aliases: settings, store, jobs, the current
user (from the bearer token) and the current user's book."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taleloom.config import Settings
from taleloom.errors import TaleloomError
from taleloom.server.jobs import JobManager
from taleloom.server.store import BookRow, Store, User
from taleloom.storage import BookStorage, LocalFolder


class HTTPError(TaleloomError):
    """An error with an explicit HTTP status; the body is the usual {error, message, hint}."""

    def __init__(self, status_code: int, error: str, message: str, hint: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message, hint)
        self.status_code = status_code
        self.error = error
        self.headers = headers

    def to_dict(self) -> dict:
        return {"error": self.error, "message": self.message, "hint": self.hint}


def not_found(what: str, hint: str | None = None) -> HTTPError:
    return HTTPError(404, "NotFound", f"{what} does not exist, or is not yours",
                     hint or "check the id; books are visible only with their owner's token")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]

_bearer = HTTPBearer(auto_error=False, description="a token from `taleloom token create`")


async def current_user(store: StoreDep,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    """The token's owner. Async on purpose: one indexed lookup is cheaper on the event loop than a
    hop to the thread pool, which under load costs more than the query."""
    if credentials is None:
        raise HTTPError(401, "Unauthorized", "this route needs a bearer token",
                        "send the header 'Authorization: Bearer <token>'; make a token with `taleloom token create`",
                        headers={"WWW-Authenticate": "Bearer"})
    user = store.user_for_token(credentials.credentials)
    if user is None:
        raise HTTPError(401, "Unauthorized", "the bearer token is unknown or revoked",
                        "make a new one with `taleloom token create`", headers={"WWW-Authenticate": "Bearer"})
    return user


UserDep = Annotated[User, Depends(current_user)]


class InFlight:
    """Single-step calls each user has running. They run in the request, not the job queue, so without
    this one client could hold every model slot and thread of the server."""

    def __init__(self) -> None:
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, user_id: str, limit: int) -> Iterator[None]:
        with self._lock:
            if self._running[user_id] >= limit:
                raise HTTPError(429, "TooManyRequests", f"you have {self._running[user_id]} single-step calls "
                                f"running; the limit is {limit} per user (max_steps_per_user)",
                                "wait for one to finish, then send this again", headers={"Retry-After": "5"})
            self._running[user_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[user_id] -= 1
                if self._running[user_id] <= 0:  # no entry per user who ever called, for the server's life
                    del self._running[user_id]


def step_user(request: Request, user: UserDep, settings: SettingsDep) -> Iterator[User]:
    """The caller, counted as running one single-step call until the route returns."""
    with request.app.state.in_flight.hold(user.id, settings.max_steps_per_user):
        yield user


StepUserDep = Annotated[User, Depends(step_user)]


async def owned_book(book_id: str, user: UserDep, store: StoreDep) -> BookRow:
    """The book `book_id` when it belongs to the caller; 404 otherwise (never says whose it is)."""
    book = store.get_book(book_id, user.id)
    if book is None:
        raise not_found(f"book {book_id}")
    return book


BookDep = Annotated[BookRow, Depends(owned_book)]


def books_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "books"


def book_storage(settings: Settings) -> BookStorage:
    """Where book files live (see taleloom.storage): the `books` folder of the data folder."""
    return LocalFolder(books_dir(settings))
