"""A Redis lock with an expiry, renewed by a heartbeat, so a periodic job never runs twice at once.

Two beats, or a run slower than its interval, would otherwise overlap (the Celery task
cookbook's "ensuring a task is only executed one at a time"). The lock is a key holding a
random token, set with ``NX`` and an expiry: only the holder of the token can release or
extend it (the compare and the delete are one script, so an expired holder never deletes a
newer holder's lock).

An expiry alone only limits overlap: a run that outlives it overlaps the next one. So while a
job runs, a :class:`Heartbeat` thread renews the lock every third of its expiry, and the
expiry can stay short (a crashed holder blocks the next run only briefly, whatever the job's
time budget). The holder reads :attr:`JobLock.lost` between its store calls and stops once it
is set: when a renewal found another token on the key (or none), or when the expiry has passed
since the last renewal that succeeded (Redis unreachable for that long: another run may have
taken the lock meanwhile). A lost lock stays lost; renewing it again would hide an overlap.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType

from redis.exceptions import LockError

from stores.driver_errors import redis_translated
from stores.errors import StoreError
from stores.sessions.clients import Client
from workers.keys import lock_key

logger = logging.getLogger("hearth.locks")

HEARTBEATS_PER_TTL = 3
"""Renewals per expiry: one may fail (Redis briefly away) and the next still keeps the lock."""

Wait = Callable[[threading.Event, float], bool]
"""Waits up to the given seconds or until the event is set; True when it is set (stop)."""


def _wait_on_event(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


class JobLock:
    """The lock of one periodic job; not reentrant, one instance per attempt.

    ``monotonic`` is the clock that decides when an unrenewed lock counts as lost.
    """

    def __init__(
        self,
        client: Client,
        job: str,
        ttl_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("a lock needs a positive expiry")
        self.job = job
        self.key = lock_key(job)
        self.ttl_seconds = ttl_seconds
        self._monotonic = monotonic
        self._lock = client.lock(self.key, timeout=ttl_seconds, blocking=False, thread_local=False)
        self._held = False
        self._lost = False
        self._valid_until = -math.inf
        # The heartbeat thread and the holder both update the state below.
        self._state = threading.Lock()

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this instance now holds it."""
        # Read before the request: the key's expiry starts later, so this errs on the safe side.
        sent_at = self._monotonic()
        with redis_translated(f"cannot take the {self.job} lock"):
            taken = bool(self._lock.acquire(blocking=False))
        with self._state:
            self._held = taken
            self._lost = False
            if taken:
                self._valid_until = sent_at + self.ttl_seconds
        return taken

    def extend(self, ttl_seconds: float | None = None) -> bool:
        """Reset the expiry to ``ttl_seconds`` (default: the original); False if lost.

        Raises:
            StoreError: Redis did not answer (StoreUnavailableError) or refused the call;
                whether the lock is still held is unknown (:attr:`lost` turns True once the
                expiry passes without a renewal).
        """
        if not self._held or self.lost:
            return False
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        sent_at = self._monotonic()
        with redis_translated(f"cannot extend the {self.job} lock"):
            try:
                self._lock.extend(ttl, replace_ttl=True)
            except LockError:
                # Expired, or another run's token is on the key now: never touch it again.
                with self._state:
                    self._held = False
                    self._lost = True
                return False
        with self._state:
            if self._lost:
                return False
            self._valid_until = sent_at + ttl
        return True

    def renew(self) -> bool:
        """One heartbeat: extend to the full expiry; False once the lock is lost.

        A Redis error is logged, not raised: the next heartbeat tries again, and the lock
        counts as lost only when its expiry passes without a successful renewal.
        """
        try:
            return self.extend()
        except StoreError as exc:
            logger.warning(
                "could not renew the %s lock (retrying at the next beat): %s", self.job, exc
            )
            return not self.lost

    def release(self) -> bool:
        """Release the lock if this instance still holds it; False if it had expired."""
        with self._state:
            if not self._held:
                return False
            self._held = False
        with redis_translated(f"cannot release the {self.job} lock"):
            try:
                self._lock.release()
            except LockError:
                # Expired, and perhaps taken by another run since: leave that run's lock alone.
                return False
        return True

    @property
    def held(self) -> bool:
        """Whether this instance took the lock (and has neither released nor lost it)."""
        return self._held

    @property
    def lost(self) -> bool:
        """Whether the lock was taken and may no longer be this instance's; stays True once set.

        True when a renewal found the key gone or holding another token, or when the expiry
        has passed (on this instance's clock) since the last successful renewal.
        """
        with self._state:
            if not self._lost and self._held and self._monotonic() >= self._valid_until:
                self._lost = True
            return self._lost

    def heartbeat(
        self, *, interval_seconds: float | None = None, wait: Wait | None = None
    ) -> Heartbeat:
        """A heartbeat that renews this lock while the job runs (use it as a context manager)."""
        return Heartbeat(self, interval_seconds=interval_seconds, wait=wait)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Heartbeat:
    """Renews a held :class:`JobLock` on a daemon thread until stopped or the lock is lost.

    ``interval_seconds`` defaults to a third of the lock's expiry. ``wait`` paces the beats
    (default: the stop event's own ``wait``): it gets the stop event and the delay until the
    next beat, and returns True to stop. :meth:`beat` renews once, on the caller's thread.
    """

    def __init__(
        self,
        lock: JobLock,
        *,
        interval_seconds: float | None = None,
        wait: Wait | None = None,
    ) -> None:
        interval = (
            lock.ttl_seconds / HEARTBEATS_PER_TTL if interval_seconds is None else interval_seconds
        )
        if interval <= 0:
            raise ValueError("a heartbeat needs a positive interval")
        self.lock = lock
        self.interval_seconds = interval
        self._wait = wait or _wait_on_event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """Renew the lock once; False once it is lost (the heartbeat then stops)."""
        if self.lock.renew():
            return True
        logger.warning("the %s lock was lost; the run stops at its next check", self.lock.job)
        return False

    def start(self) -> None:
        """Start beating on a daemon thread (at most once)."""
        if self._thread is not None:
            raise RuntimeError("a heartbeat starts once")
        self._thread = threading.Thread(
            target=self._run, name=f"hearth-heartbeat-{self.lock.job}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and wait for the thread to end.

        A renewal in flight finishes first; the wait is bounded by the expiry so that a hung
        Redis call cannot hold the task, and no renewal starts after this returns.
        """
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout=max(self.lock.ttl_seconds, 1.0))
        if thread.is_alive():
            logger.warning("the %s heartbeat is stuck in a renewal; it ends with it", self.lock.job)

    @property
    def alive(self) -> bool:
        """Whether the heartbeat thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        delay = self.interval_seconds
        while not self._wait(self._stop, delay):
            if self._stop.is_set():
                return
            began = time.monotonic()
            try:
                if not self.beat():
                    return
            except Exception:
                # Whatever went wrong, the holder sees the lock lost once its expiry passes.
                logger.exception(
                    "the %s heartbeat failed; retrying at the next beat", self.lock.job
                )
            # Paced from the start of each beat, so a slow renewal does not push the next late.
            delay = max(0.0, self.interval_seconds - (time.monotonic() - began))

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def remaining_seconds(client: Client, job: str) -> float | None:
    """How long the job's lock still lives, or None when nobody holds it."""
    with redis_translated(f"cannot read the {job} lock"):
        pttl = int(client.pttl(lock_key(job)))
    if pttl < 0:
        return None if pttl == -2 else math.inf
    return pttl / 1000.0
