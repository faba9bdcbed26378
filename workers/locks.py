"""A Redis lock with an expiry, so that a periodic job never runs twice at once.

Two beats, or a run slower than its interval, would otherwise overlap (the Celery task
cookbook's "ensuring a task is only executed one at a time"). The lock is a key holding a
random token, set with ``NX`` and an expiry: a holder that crashes blocks the next run for at
most the expiry, and only the holder of the token can release or extend it (the compare and
the delete are one script, so an expired holder never deletes a newer holder's lock).
"""

from __future__ import annotations

import math
from types import TracebackType

import redis
from redis.exceptions import LockError

from stores.errors import StoreUnavailableError
from workers.keys import lock_key


class JobLock:
    """The lock of one periodic job; not reentrant, one instance per attempt."""

    def __init__(self, client: redis.Redis, job: str, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError("a lock needs a positive expiry")
        self.job = job
        self.key = lock_key(job)
        self.ttl_seconds = ttl_seconds
        self._lock = client.lock(self.key, timeout=ttl_seconds, blocking=False, thread_local=False)
        self._held = False

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this instance now holds it."""
        try:
            self._held = bool(self._lock.acquire(blocking=False))
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"cannot take the {self.job} lock: {exc}") from exc
        return self._held

    def extend(self, ttl_seconds: float | None = None) -> bool:
        """Reset the expiry to ``ttl_seconds`` (default: the original); False if lost."""
        if not self._held:
            return False
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        try:
            return bool(self._lock.extend(ttl, replace_ttl=True))
        except LockError:
            self._held = False
            return False
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"cannot extend the {self.job} lock: {exc}") from exc

    def release(self) -> bool:
        """Release the lock if this instance still holds it; False if it had expired."""
        if not self._held:
            return False
        self._held = False
        try:
            self._lock.release()
        except LockError:
            # Expired, and perhaps taken by another run since: leave that run's lock alone.
            return False
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"cannot release the {self.job} lock: {exc}") from exc
        return True

    @property
    def held(self) -> bool:
        """Whether this instance took the lock (and has not released it)."""
        return self._held

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def remaining_seconds(client: redis.Redis, job: str) -> float | None:
    """How long the job's lock still lives, or None when nobody holds it."""
    try:
        pttl = int(client.pttl(lock_key(job)))
    except redis.RedisError as exc:
        raise StoreUnavailableError(f"cannot read the {job} lock: {exc}") from exc
    if pttl < 0:
        return None if pttl == -2 else math.inf
    return pttl / 1000.0
