"""The single writer of a set of sessions, and the checker of every read it makes (see
``harness.py`` for what counts as which anomaly)."""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from stores.errors import ConflictError, NotFoundError, StoreError, StoreUnavailableError
from stores.sessions import Session
from tests.chaos.common import (
    ANOMALIES,
    CHANNEL,
    STATUSES,
    STEPS,
    Flag,
    Shared,
    WriterSpec,
    stamp,
)


@dataclass
class Slot:
    """One session id of a writer, and what a read of it must return."""

    id: UUID
    identity: str
    # The highest incarnation ever attempted; each (re-)creation takes the next one.
    inc: int = 0
    live: Session | None = None
    dead: set[int] = field(default_factory=set)
    vanished: set[int] = field(default_factory=set)
    max_read: dict[int, int] = field(default_factory=dict)
    unresolved: bool = False
    # When (store clock) a write or get last restarted the session's idle time.
    touched: datetime | None = None
    # The last operations and what they returned, shown with the samples of anomalies.
    history: deque[str] = field(default_factory=lambda: deque(maxlen=12))

    def log(self, entry: str) -> None:
        """Add to the history, stamped with the wall clock (as the fault log is)."""
        self.history.append(f"{stamp()} {entry}")


def inc_of(session: Session) -> int | None:
    """The incarnation a writer numbered the session with (in its variables)."""
    value = session.variables.get("inc")
    return value if isinstance(value, int) else None


def _content(session: Session, *, created: bool) -> dict[str, Any]:
    # last_activity_at is the store's bookkeeping; created_at is unknown for a write whose
    # outcome was uncertain, so it is compared only where the expected copy was stored.
    skip = {"last_activity_at"} if created else {"last_activity_at", "created_at"}
    return session.model_dump(exclude=skip)


def _same(got: Session, expected: Session, *, created: bool = True) -> bool:
    return _content(got, created=created) == _content(expected, created=created)


def brief(session: Session | None) -> str | None:
    if session is None:
        return None
    return f"inc={inc_of(session)} v={session.version} {session.status.value}"


class Writer:
    """A single writer of a set of sessions, checking every read of them (see the module
    docstring)."""

    def __init__(
        self,
        spec: WriterSpec,
        max_samples: int,
        clock: Callable[[], datetime] | None = None,
        race: float = 0.0,
        hot_ttl: timedelta = timedelta(0),
        race_window: timedelta = timedelta(0),
        socket_timeout: float = 2.0,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.race = race
        self.hot_ttl = hot_ttl
        self.race_window = race_window
        self.rng = random.Random(spec.seed)
        self.slots = [
            Slot(id=sid, identity=f"{spec.name}-{i // 2}") for i, sid in enumerate(spec.ids)
        ]
        self.by_id = {s.id: s for s in self.slots}
        self.pairs: dict[str, list[Slot]] = {}
        for slot in self.slots:
            self.pairs.setdefault(slot.identity, []).append(slot)
        self.anomalies: dict[str, Counter[str]] = {k: Counter() for k in ANOMALIES}
        self.distinct: dict[str, set[str]] = {k: set() for k in ANOMALIES}
        self.samples: list[dict[str, Any]] = []
        self.max_samples = max_samples
        self.info: Counter[str] = Counter()
        self.errors: list[str] = []
        self.store_error_samples: list[str] = []
        self.remarks: list[dict[str, Any]] = []
        self.fault_at: Any = None
        self.redis_outage: Any = None
        self.socket_timeout = socket_timeout

    def note(
        self,
        kind: str,
        path: str,
        slot_id: UUID | str,
        expected: Session | None,
        got: Session | None,
        detail: str = "",
    ) -> None:
        """Count one anomaly and keep a sample of the first ones."""
        self.anomalies[kind][path] += 1
        self.distinct[kind].add(str(slot_id))
        slot = self.by_id.get(slot_id) if isinstance(slot_id, UUID) else None
        if slot is not None:
            slot.log(f"{path} read {brief(got)}: {kind} {detail}".rstrip())
        if len(self.samples) < self.max_samples:
            since = None
            if self.fault_at is not None and self.fault_at.value:
                since = round(time.time() - self.fault_at.value, 3)
            self.samples.append(
                {
                    "kind": kind,
                    "path": path,
                    "writer": self.spec.name,
                    "id": str(slot_id),
                    "expected": brief(expected),
                    "got": brief(got),
                    "detail": detail,
                    "seconds_since_fault": since,
                    "history": list(slot.history) if slot else [],
                }
            )

    def observe(self, slot: Slot, got: Session | None, path: str) -> None:
        """The check every read makes: versions of an incarnation never go backwards."""
        if got is None:
            return
        inc = inc_of(got)
        if inc is None:
            return
        highest = slot.max_read.get(inc, 0)
        if got.version < highest:
            self.note("backwards_versions", path, slot.id, slot.live, got, f"after v={highest}")
        slot.max_read[inc] = max(highest, got.version)

    def judge(self, slot: Slot, got: Session | None, path: str) -> str | None:
        """Compare a read of ``slot`` with what it must be; note and return the anomaly.

        A slot whose last write has an unknown outcome has no expected state: not judged.
        """
        if slot.unresolved:
            return None
        self.observe(slot, got, path)
        expected = slot.live
        kind: str | None = None
        if got is not None and got.id != slot.id:
            kind = "unexplained"
        elif expected is None:
            if got is not None:
                inc = inc_of(got)
                kind = "resurrected" if inc in slot.dead else "unexplained"
                if inc in slot.vanished:
                    self.info["reappeared"] += 1
                    kind = "unexplained"
        elif got is None:
            kind = "lost"
        else:
            inc, want = inc_of(got), inc_of(expected)
            if inc == want:
                if got.version < expected.version:
                    kind = "stale"
                elif got.version > expected.version or not _same(got, expected):
                    kind = "unexplained"
            elif inc in slot.dead:
                kind = "resurrected"
            else:
                kind = "unexplained"
        if kind is not None:
            self.note(kind, path, slot.id, expected, got)
        return kind

    def adopt(self, slot: Slot, got: Session | None) -> None:
        """Take what the store holds as the truth from now on (after an anomaly)."""
        if got is None:
            if slot.live is not None:
                inc = inc_of(slot.live)
                if inc is not None:
                    slot.vanished.add(inc)
            slot.live = None
            return
        inc = inc_of(got)
        slot.live = got
        if inc is not None:
            slot.inc = max(slot.inc, inc)
            slot.max_read[inc] = got.version
            slot.vanished.discard(inc)

    def run(self, store: Any, stop: Flag, counters: Shared) -> None:
        """Operate on random sessions until ``stop`` is set."""
        published = 0
        try:
            while not stop.is_set():
                self.once(store)
                counters.bump(self.spec.row, "ops", self.info["ops"] - published)
                published = self.info["ops"]
        except Exception:
            self.errors.append(traceback.format_exc())
        counters.bump(self.spec.row, "ops", self.info["ops"] - published)
        # Reads of the final checks are counted apart from the load.
        self.info["ops_in_load"] = self.info["ops"]

    def once(self, store: Any) -> None:
        """One operation on a session picked at random."""
        slot, racing = self.pick()
        if slot.unresolved:
            time.sleep(0.001)
            return
        try:
            if racing:
                self.race_step(store, slot)
            else:
                self.step(store, slot)
        except StoreUnavailableError:
            self.info["unavailable"] += 1
            time.sleep(0.02)
        except StoreError as exc:
            self.store_error(exc, "read")

    def pick(self) -> tuple[Slot, bool]:
        """The slot to operate on, and whether it is raced: most picks are uniform, some go
        to a session that has just become idle, which the demoters are moving right now."""
        if self.clock is not None and self.rng.random() < self.race:
            now = self.clock()
            due = [
                s
                for s in self.slots
                if s.live is not None
                and s.touched is not None
                and self.hot_ttl <= now - s.touched <= self.hot_ttl + self.race_window
            ]
            if due:
                self.info["raced"] += 1
                return self.rng.choice(due), True
        return self.rng.choice(self.slots), False

    def race_step(self, store: Any, slot: Slot) -> None:
        """An operation that races the move of ``slot``: the re-creation of a session under
        the same id at the same version, a save, or a get."""
        roll = self.rng.random()
        if roll < 0.4:
            self.delete(store, slot)
            if slot.live is None:
                self.create(store, slot)
        elif roll < 0.7:
            self.save(store, slot)
        else:
            self.get(store, slot)

    def step(self, store: Any, slot: Slot) -> None:
        """One operation on ``slot``, chosen by its state."""
        roll = self.rng.random()
        if slot.live is None:
            if roll < 0.7:
                self.create(store, slot)
            elif roll < 0.8:
                self.get(store, slot)
            elif roll < 0.88:
                self.tier_of(store, slot)
            elif roll < 0.95:
                self.by_channel(store, slot)
            else:
                self.delete(store, slot)
            return
        if roll < 0.26:
            self.get(store, slot)
        elif roll < 0.50:
            self.save(store, slot)
        elif roll < 0.54:
            self.save(store, slot, overwrite=True)
        elif roll < 0.62:
            self.tier_of(store, slot)
        elif roll < 0.70:
            self.by_channel(store, slot)
        elif roll < 0.86:
            self.listing(store)
        else:
            self.delete(store, slot)
            if slot.live is None and self.rng.random() < 0.6:
                # Re-creating at once under the same id races the moves of the old one.
                self.create(store, slot)

    def _fields(self) -> dict[str, Any]:
        rng = self.rng
        on_scenario = rng.random() < 0.8
        return {
            "agent_id": rng.choice(self.spec.agents),
            "customer_profile_id": rng.choice([None, *self.spec.customers]),
            "status": rng.choice(STATUSES),
            "active_scenario_id": self.spec.scenario if on_scenario else None,
            "active_scenario_version": rng.choice((1, 2)) if on_scenario else None,
            "current_step_id": rng.choice((None, *STEPS)) if on_scenario else None,
        }

    def create(self, store: Any, slot: Slot) -> None:
        """Create the next incarnation of ``slot`` (version 0)."""
        slot.inc += 1
        session = Session(
            id=slot.id,
            tenant_id=self.spec.tenant,
            channel=CHANNEL,
            user_channel_id=slot.identity,
            variables={"w": self.spec.name, "inc": slot.inc, "n": 1},
            **self._fields(),
        )
        recreation = bool(slot.dead)
        self.info["ops"] += 1
        try:
            stored = store.save(session)
        except StoreError as exc:
            slot.log(f"create inc={slot.inc}: {type(exc).__name__}")
            self.uncertain(store, slot, None, session, exc)
            return
        slot.log(f"create inc={slot.inc}: ok")
        self.acked(slot, stored, session, 1, "create")
        if recreation:
            self.info["recreations"] += 1

    def save(self, store: Any, slot: Slot, *, overwrite: bool = False) -> None:
        """Save a changed copy of the last acknowledged one."""
        current = slot.live
        assert current is not None
        fields = self._fields() if self.rng.random() < 0.5 else {}
        variables = {**current.variables, "n": current.version + 1}
        variables["note"] = self.rng.choice(("a", "bb", "ccc", "x" * self.rng.randint(0, 400)))
        session = current.model_copy(update={**fields, "variables": variables})
        self.info["ops"] += 1
        path = "save_overwrite" if overwrite else "save"
        what = f"{path} inc={inc_of(current)} v={current.version}"
        try:
            stored = store.save(session, overwrite=overwrite)
        except StoreError as exc:
            slot.log(f"{what}: {type(exc).__name__}")
            self.uncertain(store, slot, current, session, exc)
            return
        slot.log(f"{what}: ok v={stored.version}")
        self.acked(slot, stored, session, current.version + 1, path)

    def acked(self, slot: Slot, stored: Session, sent: Session, version: int, path: str) -> None:
        """A write landed: check the stored copy it returned and expect it from now on."""
        self.touch(slot)
        if stored.version != version or not _same(
            stored, sent.model_copy(update={"version": version}), created=False
        ):
            # overwrite=True recreates a session that vanished: version 1 reveals the loss.
            if path == "save_overwrite" and stored.version == 1 and version > 1:
                kind = "lost"
            elif stored.version < version:
                kind = "stale"
            else:
                kind = "unexplained"
            self.note(kind, path, slot.id, slot.live, stored, f"wrote v={version}")
        slot.live = stored
        inc = inc_of(stored)
        if inc is not None:
            slot.max_read.setdefault(inc, 0)

    def delete(self, store: Any, slot: Slot) -> None:
        """Delete the session; a delete of an absent one must answer False."""
        current = slot.live
        self.info["ops"] += 1
        what = f"delete {brief(current)}"
        started = time.time()
        try:
            existed = store.delete(self.spec.tenant, slot.id)
        except StoreError as exc:
            slot.log(f"{what}: {type(exc).__name__}")
            self.uncertain(store, slot, current, None, exc)
            return
        slot.log(f"{what}: {existed}")
        if current is None and existed:
            kind = "resurrected" if slot.dead else "unexplained"
            self.note(kind, "delete", slot.id, None, None, "delete answered True")
        if current is not None and not existed:
            ended = time.time()
            if self.retry_possible(started, ended):
                # redis-py resends a command whose connection broke or timed out; a delete
                # whose first attempt landed then answers False.
                self.info["delete_found_nothing"] += 1
                self.remark("delete answered False during a Redis outage or timeout", slot)
            else:
                took = f"delete answered False in {ended - started:.3f} s"
                self.note("lost", "delete", slot.id, current, None, took)
        if current is not None:
            inc = inc_of(current)
            if inc is not None:
                slot.dead.add(inc)
        slot.live = None

    def retry_possible(self, started: float, ended: float) -> bool:
        """Whether redis-py may have resent a call made from ``started`` to ``ended``: it took
        as long as a socket timeout, or Redis was killed or just back meanwhile."""
        if ended - started >= self.socket_timeout:
            return True
        if self.redis_outage is None:
            return False
        killed, back = self.redis_outage[0], self.redis_outage[1]
        return bool(killed) and ended >= killed and (back < killed or started <= back + 1.0)

    def remark(self, what: str, slot: Slot) -> None:
        """Keep the history of a slot where something odd but explained happened."""
        if len(self.remarks) < 5:
            self.remarks.append({"what": what, "id": str(slot.id), "history": list(slot.history)})

    def touch(self, slot: Slot) -> None:
        """Note that the session's idle time may have started again (a write, a promotion)."""
        if self.clock is not None:
            slot.touched = self.clock()

    def store_error(self, exc: StoreError, what: str) -> None:
        """A StoreError that neither a fault nor the single writer explains: a store bug."""
        self.info["store_errors"] += 1
        if self.info["store_errors"] <= 3:
            self.store_error_samples.append(f"{what} raised {type(exc).__name__}: {exc}")

    def uncertain(
        self,
        store: Any,
        slot: Slot,
        before: Session | None,
        after: Session | None,
        exc: StoreError,
    ) -> None:
        """A write raised: read until the store answers, accept the old or the new state.

        A ConflictError or NotFoundError has no cause but an anomaly, which the read shows;
        any other error but unavailability is a store bug of its own.
        """
        self.info["uncertain"] += 1
        if not isinstance(exc, StoreUnavailableError):
            self.info[f"raised_{type(exc).__name__}"] += 1
            if not isinstance(exc, (ConflictError, NotFoundError)):
                self.store_error(exc, "write")
        got, answered = self.read_until_answered(store, slot)
        self.touch(slot)
        if not answered:
            slot.unresolved = True
            self.info["unresolved"] += 1
            return
        self.observe(slot, got, "resolve")
        slot.log(f"resolved by get: {brief(got)}")
        if self._matches(got, after, stored=False):
            if after is None and before is not None:
                inc = inc_of(before)
                if inc is not None:
                    slot.dead.add(inc)
            slot.live = got
        elif self._matches(got, before, stored=True):
            slot.live = got
        else:
            slot.live = before
            self.judge(slot, got, "resolve")
            self.adopt(slot, got)

    @staticmethod
    def _matches(got: Session | None, candidate: Session | None, *, stored: bool) -> bool:
        if candidate is None or got is None:
            return candidate is None and got is None
        return (
            inc_of(got) == inc_of(candidate)
            and got.version == (candidate.version if stored else candidate.version + 1)
            and _same(
                got,
                candidate if stored else candidate.model_copy(update={"version": got.version}),
                created=stored,
            )
        )

    def read_until_answered(self, store: Any, slot: Slot) -> tuple[Session | None, bool]:
        """Get the session, retrying while the store is unavailable (up to a minute)."""
        deadline = time.monotonic() + 60
        while True:
            self.info["ops"] += 1
            try:
                return store.get(self.spec.tenant, slot.id), True
            except StoreUnavailableError:
                if time.monotonic() > deadline:
                    return None, False
            except StoreError as exc:
                self.store_error(exc, "read")
                return None, False
                time.sleep(0.05)

    def get(self, store: Any, slot: Slot, path: str = "get") -> None:
        """Get the session and judge it; adopt what the store holds after an anomaly."""
        self.info["ops"] += 1
        got = store.get(self.spec.tenant, slot.id)
        self.touch(slot)
        slot.log(f"{path}: {brief(got)}")
        if self.judge(slot, got, path):
            self.adopt(slot, got)

    def tier_of(self, store: Any, slot: Slot, path: str = "tier_of") -> None:
        """``tier_of`` is None exactly for absent sessions."""
        self.info["ops"] += 1
        tier = store.tier_of(self.spec.tenant, slot.id)
        slot.log(f"{path}: {tier}")
        if slot.unresolved:
            return
        if slot.live is not None and tier is None:
            self.note("lost", path, slot.id, slot.live, None)
        elif slot.live is None and tier is not None:
            kind = "resurrected" if slot.dead else "unexplained"
            self.note(kind, path, slot.id, None, None, f"tier {tier}")
        else:
            return
        self.get(store, slot, "get_after_" + path)

    def by_channel(self, store: Any, slot: Slot, path: str = "get_by_channel") -> None:
        """The newest live session of the slot's channel identity, by (created_at, id)."""
        pair = self.pairs[slot.identity]
        self.info["ops"] += 1
        got = store.get_by_channel(self.spec.tenant, CHANNEL, slot.identity)
        if any(s.unresolved for s in pair):
            return
        alive = [s for s in pair if s.live is not None]
        newest = max(
            alive,
            key=lambda s: (s.live.created_at, str(s.id)),  # type: ignore[union-attr]
            default=None,
        )
        confirm: list[Slot] = []
        if got is None:
            if newest is not None:
                self.note("lost", path, newest.id, newest.live, None)
                confirm.append(newest)
        else:
            owner = self.by_id.get(got.id)
            if owner is None or owner not in pair:
                self.note("unexplained", path, got.id, None, got, "not this identity")
                return
            if self.judge(owner, got, path):
                confirm.append(owner)
            elif newest is not None and owner is not newest:
                self.note("lost", path, newest.id, newest.live, None, "an older one returned")
                confirm.append(newest)
        for other in confirm:
            self.get(store, other, "get_after_" + path)

    def listing(self, store: Any) -> None:
        """One listing, every page, checked against the writer's sessions."""
        rng = self.rng
        kind = rng.choice(("agent", "customer", "step"))
        status = None if rng.random() < 0.5 else rng.choice(STATUSES)
        limit = rng.choice((3, 10, 25, 100))
        if kind == "agent":
            owner = rng.choice(self.spec.agents)
            self.check_listing(
                store,
                "list_by_agent",
                lambda c: store.list_by_agent(
                    self.spec.tenant, owner, status=status, limit=limit, cursor=c
                ),
                lambda s: s.agent_id == owner and status in (None, s.status),
            )
        elif kind == "customer":
            owner = rng.choice(self.spec.customers)
            self.check_listing(
                store,
                "list_by_customer",
                lambda c: store.list_by_customer(
                    self.spec.tenant, owner, status=status, limit=limit, cursor=c
                ),
                lambda s: s.customer_profile_id == owner and status in (None, s.status),
            )
        else:
            version = rng.choice((1, 2))
            step = rng.choice((None, *STEPS))
            self.check_listing(
                store,
                "find_by_scenario_step",
                lambda c: store.find_by_scenario_step(
                    self.spec.tenant, self.spec.scenario, version, step, limit=limit, cursor=c
                ),
                lambda s: (
                    s.active_scenario_id == self.spec.scenario
                    and s.active_scenario_version == version
                    and step in (None, s.current_step_id)
                ),
            )

    def check_listing(
        self,
        store: Any,
        path: str,
        page: Callable[[str | None], Any],
        wanted: Callable[[Session], bool],
    ) -> None:
        """Every live matching session listed once with its current copy, nothing else."""
        items: list[Session] = []
        cursor: str | None = None
        for _ in range(1000):
            self.info["ops"] += 1
            result = page(cursor)
            items.extend(result.items)
            cursor = result.next_cursor
            if cursor is None:
                break
        seen: set[UUID] = set()
        confirm: list[Slot] = []
        for item in items:
            if item.id in seen:
                self.note("duplicated", path, item.id, None, item)
                continue
            seen.add(item.id)
            slot = self.by_id.get(item.id)
            if slot is None:
                self.note("unexplained", path, item.id, None, item, "not this writer's")
                continue
            if self.judge(slot, item, path):
                confirm.append(slot)
            elif not wanted(item):
                self.note("unexplained", path, item.id, slot.live, item, "outside the filter")
        for slot in self.slots:
            if (
                slot.live is not None
                and not slot.unresolved
                and wanted(slot.live)
                and slot.id not in seen
            ):
                self.note("lost", path, slot.id, slot.live, None)
                confirm.append(slot)
        for slot in confirm[:8]:
            self.get(store, slot, "get_after_list")

    def final_check(self, store: Any) -> None:
        """Read every session once more through every path, on a quiet system."""
        for slot in self.slots:
            if slot.unresolved:
                continue
            self.tier_of(store, slot, "final_tier_of")
            self.get(store, slot, "final_get")
        for pair in self.pairs.values():
            self.by_channel(store, pair[0], "final_get_by_channel")
        tenant, scenario = self.spec.tenant, self.spec.scenario
        finals: list[tuple[str, Callable[[str | None], Any], Callable[[Session], bool]]] = []
        for agent in self.spec.agents:
            finals.append(
                (
                    "final_list_by_agent",
                    _pages(store.list_by_agent, tenant, agent),
                    _field_is("agent_id", agent),
                )
            )
        for customer in self.spec.customers:
            finals.append(
                (
                    "final_list_by_customer",
                    _pages(store.list_by_customer, tenant, customer),
                    _field_is("customer_profile_id", customer),
                )
            )
        for version in (1, 2):
            finals.append(
                (
                    "final_find_by_scenario_step",
                    _pages(store.find_by_scenario_step, tenant, scenario, version, None),
                    _on_scenario(scenario, version),
                )
            )
        for path, page, wanted in finals:
            self.check_listing(store, path, page, wanted)

    def live_sessions(self) -> dict[UUID, Session]:
        """The sessions that must exist now."""
        return {s.id: s.live for s in self.slots if s.live is not None}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Shared memory travels only to spawned processes.
        state["fault_at"] = None
        state["redis_outage"] = None
        state["clock"] = None
        return state


def _pages(method: Callable[..., Any], *args: Any) -> Callable[[str | None], Any]:
    """The pages of a listing with small pages, by cursor."""
    return lambda cursor: method(*args, limit=7, cursor=cursor)


def _field_is(name: str, value: object) -> Callable[[Session], bool]:
    return lambda s: bool(getattr(s, name) == value)


def _on_scenario(scenario: UUID, version: int) -> Callable[[Session], bool]:
    return lambda s: s.active_scenario_id == scenario and s.active_scenario_version == version
