"""Persistence for the service: users, bearer tokens (hashes only), books, jobs and share links.

SQLAlchemy 2.0. SQLite file in the data folder by default (WAL, so readers never wait for the
worker that writes); PostgreSQL when `database_url` says so (``postgresql://...`` is driven by
psycopg 3). Every method opens its own short transaction, so the store is safe to share between
request threads and job workers. Returned rows are detached snapshots.

Jobs are leased: a worker claims one with `claim_next` (one UPDATE, atomic in SQLite; `FOR UPDATE
SKIP LOCKED` in PostgreSQL), becomes its `lease_owner` until `lease_until`, and renews the lease
while it works. Any process may claim a queued job, or a running one whose lease has run out, but
never a job of a book that has another job under a live lease: so servers sharing a data folder or a
database never run one book twice at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    String,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column, sessionmaker

from taleloom.book import now

TOKEN_PREFIX = "tl_"
ACTIVE = ("queued", "running")  # job states that count against the queue limits


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[str] = mapped_column(String(40), default=now)


class Token(Base):
    __tablename__ = "tokens"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    hint: Mapped[str] = mapped_column(String(16), default="")  # first characters, to tell tokens apart
    created: Mapped[str] = mapped_column(String(40), default=now)
    revoked: Mapped[str | None] = mapped_column(String(40), default=None)


class BookRow(Base):
    __tablename__ = "books"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed
    title: Mapped[str | None] = mapped_column(String(400), default=None)
    pages: Mapped[int] = mapped_column(default=0)
    error: Mapped[dict | None] = mapped_column(JSON, default=None)  # {error, message, hint} of the last failure
    created: Mapped[str] = mapped_column(String(40), default=now)
    updated: Mapped[str] = mapped_column(String(40), default=now)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    book_id: Mapped[str] = mapped_column(ForeignKey("books.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # make|redraw|rewrite|extend
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed|cancelled
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[dict | None] = mapped_column(JSON, default=None)
    created: Mapped[str] = mapped_column(String(40), default=now)
    started: Mapped[str | None] = mapped_column(String(40), default=None)
    finished: Mapped[str | None] = mapped_column(String(40), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)  # worker that runs it (host:pid:id)
    lease_until: Mapped[float | None] = mapped_column(default=None)  # epoch seconds; renewed while it runs

    __table_args__ = (Index("ix_jobs_status_user", "status", "user_id"),)


LEASE_COLUMNS = {"lease_owner": "VARCHAR(200)", "lease_until": "FLOAT"}  # added to databases made before leases


class Share(Base):
    __tablename__ = "shares"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    book_id: Mapped[str] = mapped_column(ForeignKey("books.id"), index=True)
    created: Mapped[str] = mapped_column(String(40), default=now)
    revoked: Mapped[str | None] = mapped_column(String(40), default=None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL: SQLite in `data_dir` by default; plain postgresql:// URLs use psycopg 3."""
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / 'taleloom.db').resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # WAL: readers never block on the writer; kill -9 loses nothing committed
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Store:
    """All database access of the service."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        Base.metadata.create_all(self.engine)
        self._add_lease_columns()
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = self.engine.dialect.name == "postgresql"
        self._mutexes: dict[str, threading.Lock] = {}
        self._mutexes_guard = threading.Lock()

    def _add_lease_columns(self) -> None:
        """A data folder from before job leases keeps its jobs: the two columns are added in place."""
        have = {c["name"] for c in inspect(self.engine).get_columns("jobs")}
        missing = {k: v for k, v in LEASE_COLUMNS.items() if k not in have}
        if missing:
            with self.engine.begin() as conn:
                for name, kind in missing.items():
                    conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {kind}"))

    @classmethod
    def from_settings(cls, settings) -> Store:
        return cls(database_url(settings.database_url, Path(settings.data_dir)))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """One holder of `name` at a time in every process on this database (a PostgreSQL advisory lock,
        released by the database if the holder dies), so a check and the write it allows (the queue
        limits and the job they admit) are one step for the whole service. SQLite: within this process."""
        with self._mutexes_guard:
            mutex = self._mutexes.setdefault(name, threading.Lock())
        with mutex:  # threads of this process queue here rather than each holding a database connection
            if not self.postgres:
                yield
                return
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    # users and tokens -------------------------------------------------------------------------
    def create_token(self, user_name: str | None = None, token_name: str = "") -> tuple[str, User]:
        """A new bearer token for the user called `user_name` (created if new). Only its hash is kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.session.begin() as s:
            user = None
            if user_name:
                user = s.scalar(select(User).where(User.name == user_name))
            if user is None:
                uid = secrets.token_hex(8)
                user = User(id=uid, name=user_name or f"user-{uid[:6]}", created=now())
                s.add(user)
                s.flush()
            s.add(Token(hash=hash_token(token), user_id=user.id, name=token_name, hint=token[:10], created=now()))
        return token, user

    def user_for_token(self, token: str) -> User | None:
        with self.session() as s:
            row = s.execute(select(User).join(Token, Token.user_id == User.id)
                            .where(Token.hash == hash_token(token), Token.revoked.is_(None))).first()
            return row[0] if row else None

    def list_tokens(self) -> list[tuple[Token, User]]:
        with self.session() as s:
            return [(t, u) for t, u in s.execute(select(Token, User).join(User, Token.user_id == User.id)
                                                 .order_by(Token.created))]

    def revoke_token(self, token_or_hint: str) -> int:
        """Revoke a token given whole or by its hint (first characters); returns how many were revoked."""
        with self.session.begin() as s:
            cond = Token.hash == hash_token(token_or_hint)
            if len(token_or_hint) <= 16:
                cond = cond | (Token.hint == token_or_hint)
            return s.execute(update(Token).where(cond, Token.revoked.is_(None)).values(revoked=now())).rowcount

    # books ------------------------------------------------------------------------------------
    def add_book(self, book_id: str, user_id: str, pages: int, job_kind: str = "make",
                 share_id: str | None = None) -> Job:
        """Book row + its first job (+ its share link) in one transaction."""
        with self.session.begin() as s:
            s.add(BookRow(id=book_id, user_id=user_id, status="queued", pages=pages, created=now(), updated=now()))
            s.flush()
            if share_id:
                s.add(Share(id=share_id, book_id=book_id, created=now()))
            job = Job(book_id=book_id, user_id=user_id, kind=job_kind, params={}, status="queued", created=now())
            s.add(job)
        return job

    def get_book(self, book_id: str, user_id: str | None = None) -> BookRow | None:
        """The book, or None when it does not exist or (with `user_id`) belongs to someone else."""
        with self.session() as s:
            book = s.get(BookRow, book_id)
            if book is None or (user_id is not None and book.user_id != user_id):
                return None
            return book

    def list_books(self, user_id: str, limit: int = 100) -> list[BookRow]:
        with self.session() as s:
            return list(s.scalars(select(BookRow).where(BookRow.user_id == user_id)
                                  .order_by(BookRow.created.desc()).limit(limit)))

    def update_book(self, book_id: str, **values: Any) -> None:
        with self.session.begin() as s:
            s.execute(update(BookRow).where(BookRow.id == book_id).values(updated=now(), **values))

    def delete_book(self, book_id: str) -> None:
        with self.session.begin() as s:
            s.execute(delete(Job).where(Job.book_id == book_id))
            s.execute(delete(Share).where(Share.book_id == book_id))
            s.execute(delete(BookRow).where(BookRow.id == book_id))

    # jobs -------------------------------------------------------------------------------------
    def add_job(self, book_id: str, user_id: str, kind: str, params: dict | None = None) -> Job:
        """A new job on an existing book; the book goes back to 'queued'."""
        with self.session.begin() as s:
            job = Job(book_id=book_id, user_id=user_id, kind=kind, params=params or {}, status="queued",
                      created=now())
            s.add(job)
            s.execute(update(BookRow).where(BookRow.id == book_id).values(status="queued", error=None,
                                                                          updated=now()))
        return job

    def get_job(self, job_id: int) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def claim_next(self, owner: str, lease_s: float) -> Job | None:
        """Lease the oldest job that is queued, or running under a lease that ran out, whose book has no
        other job under a live lease; None when there is nothing to do. `attempts` counts the claims."""
        t = time.time()
        cand, other = aliased(Job), aliased(Job)
        expired = and_(cand.status == "running", or_(cand.lease_until.is_(None), cand.lease_until < t))
        busy_book = exists(select(other.id).where(other.book_id == cand.book_id, other.id != cand.id,
                                                  other.status == "running", other.lease_until >= t))
        pick = (select(cand.id).where(or_(cand.status == "queued", expired), ~busy_book)
                .order_by(cand.id).limit(1))
        if self.postgres:  # two servers polling at once skip each other's row instead of waiting on it
            pick = pick.with_for_update(skip_locked=True, of=cand)
        claimable = or_(Job.status == "queued", and_(Job.status == "running",
                                                     or_(Job.lease_until.is_(None), Job.lease_until < t)))
        with self.session.begin() as s:
            job_id = s.execute(update(Job).where(Job.id == pick.scalar_subquery(), claimable)
                               .values(status="running", started=now(), attempts=Job.attempts + 1,
                                       lease_owner=owner, lease_until=t + lease_s)
                               .returning(Job.id)).scalar()
            return s.get(Job, job_id) if job_id is not None else None

    def renew_leases(self, owner: str, job_ids: list[int], lease_s: float) -> set[int]:
        """Extend the leases `owner` holds on `job_ids`; returns the ids it still holds (a job that was
        cancelled, deleted or taken over after an expired lease is not among them)."""
        if not job_ids:
            return set()
        with self.session.begin() as s:
            held = set(s.scalars(update(Job).where(Job.id.in_(job_ids), Job.lease_owner == owner,
                                                   Job.status == "running")
                                 .values(lease_until=time.time() + lease_s).returning(Job.id)))
        return held

    def leases(self) -> list[tuple[int, str]]:
        """(job id, owner) of every running job: lets a starting server find owners that have died."""
        with self.session() as s:
            return [(i, o) for i, o in s.execute(select(Job.id, Job.lease_owner).where(Job.status == "running"))]

    def expire_leases(self, owners: list[str]) -> int:
        """End the leases of owners known to be dead, so their jobs are claimed now rather than later."""
        if not owners:
            return 0
        with self.session.begin() as s:
            return s.execute(update(Job).where(Job.status == "running", Job.lease_owner.in_(owners))
                             .values(lease_until=0.0)).rowcount

    def release_leases(self, owner: str) -> list[Job]:
        """Hand back the jobs `owner` holds (a worker stopping on purpose): claimable at once, and the
        claim it made does not count against the job's attempts (it was not killed by the job)."""
        with self.session.begin() as s:
            ids = list(s.scalars(update(Job).where(Job.status == "running", Job.lease_owner == owner)
                                 .values(lease_until=0.0, attempts=Job.attempts - 1).returning(Job.id)))
            return [s.get(Job, i) for i in ids]

    def finish_job(self, job_id: int, status: str, error: dict | None = None, owner: str | None = None) -> bool:
        """Record the end of a job; with `owner`, only while that worker still holds it (False if not)."""
        cond = [Job.id == job_id] + ([Job.lease_owner == owner, Job.status == "running"] if owner else [])
        with self.session.begin() as s:
            return bool(s.execute(update(Job).where(*cond).values(status=status, error=error, finished=now(),
                                                                  lease_until=None)).rowcount)

    def count_queued(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(Job.status == "queued")) or 0

    def cancel_jobs(self, book_id: str) -> None:
        with self.session.begin() as s:
            s.execute(update(Job).where(Job.book_id == book_id, Job.status.in_(ACTIVE))
                      .values(status="cancelled", finished=now()))

    def active_job(self, book_id: str) -> Job | None:
        with self.session() as s:
            return s.scalar(select(Job).where(Job.book_id == book_id, Job.status.in_(ACTIVE)).order_by(Job.id))

    def count_active(self, user_id: str | None = None) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(Job).where(Job.status.in_(ACTIVE))
            if user_id is not None:
                q = q.where(Job.user_id == user_id)
            return s.scalar(q) or 0

    # shares -----------------------------------------------------------------------------------
    def add_share(self, book_id: str, share_id: str) -> Share:
        with self.session.begin() as s:
            share = Share(id=share_id, book_id=book_id, created=now())
            s.add(share)
        return share

    def shares(self, book_id: str) -> list[Share]:
        with self.session() as s:
            return list(s.scalars(select(Share).where(Share.book_id == book_id).order_by(Share.created)))

    def get_share(self, share_id: str) -> Share | None:
        with self.session() as s:
            return s.get(Share, share_id)

    def revoke_share(self, book_id: str, share_id: str) -> bool:
        with self.session.begin() as s:
            return bool(s.execute(update(Share).where(Share.id == share_id, Share.book_id == book_id,
                                                      Share.revoked.is_(None)).values(revoked=now())).rowcount)

    def first_share(self, book_id: str) -> Share | None:
        """The oldest share link still open (the one the QR code in the PDF points at, unless revoked)."""
        with self.session() as s:
            return s.scalar(select(Share).where(Share.book_id == book_id, Share.revoked.is_(None))
                            .order_by(Share.created))
