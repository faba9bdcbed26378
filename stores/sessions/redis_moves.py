"""The tier moves a read or a write sets off: a session found only in the cold tier is
promoted to the hot tier, under the fences ``redis.py``'s module docstring describes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from stores.errors import ConflictError
from stores.sessions import codec, keys, scripts
from stores.sessions.coldtier import ColdRow
from stores.sessions.models import Session
from stores.sessions.redis_base import MAX_ATTEMPTS, RedisCore, text, token


class Moves:
    """Promotions by reads and saves of a RedisSessionStore."""

    def __init__(self, core: RedisCore) -> None:
        self._core = core

    def write(
        self, stored: Session, data: bytes, expected: str, now: datetime, call: str
    ) -> str | None:
        """Run the save script for ``stored`` (encoded as ``data``) over the state
        ``expected``, promoting its row first where Redis holds no copy; None if the write
        landed, else the stored state."""
        args = self._core.save_args(
            stored,
            data,
            expected,
            now,
            now_us=keys.micros(now),
            row="none" if self._core.cold_tier.in_redis else "?",
            target="h",
            call=call,
            new_incarnation=token(),
        )
        # An update of a hot session skips the registry and the hints: the script says if
        # the session entered the idle set after all (back from the cold tier or the
        # quarantine), and the hints are written then.
        tenant, hint = stored.tenant_id, (keys.micros(now), keys.micros(stored.created_at))
        reply = self._core.run(
            "save", tenant, stored.id, args.argv(), hint=hint if expected == "none" else None
        )
        if expected != "none" and reply[0] == b"ok" and len(reply) > 1 and reply[1] == 1:
            self._core.hint(tenant, *hint)
            return None
        for _ in range(MAX_ATTEMPTS):
            if reply[0] == b"ok":
                return None
            if reply[1] != b"?":
                return text(reply[1])
            if reply[2] == b"":
                # The bucket has no fence token: none was ever needed, or Redis lost it.
                # One is made only where a session is or is being created, so that saves
                # of sessions that do not exist write nothing.
                if expected != "none" and self._core.cold_tier.locate(tenant, stored.id) is None:
                    return "none"
                args = replace(args, row="?", fence_token="", fresh_fence=token())
                reply = self._core.run("save", tenant, stored.id, args.argv(), hint=hint)
                continue
            # In neither Redis tier: take the row (a save over it is a promotion), then
            # write the hot copy unless the fence token changed since Redis was asked.
            with self._core.cold_tier.claim(
                stored.tenant_id, stored.id, now - self._core.max_age
            ) as cold:
                self._core.step("save:claimed")
                args = replace(args, row=_state(cold.row), fence_token=reply[2])
                reply = self._core.run("save", tenant, stored.id, args.argv(), hint=hint)
                if reply[0] == b"ok":
                    cold.keep()
                elif reply[1] == b"?":
                    self._core.refused()
        raise ConflictError(f"session {stored.id} kept moving between tiers; try again")

    def read(self, tenant: UUID, sid: UUID) -> Session | None:
        """A session Redis holds no hot copy of: from the Redis cold tier or the row,
        promoted to the hot tier on the way (see the module docstring of ``redis.py``)."""
        base = keys.base(tenant)
        fresh = ""  # no fence token is made for a session that does not exist
        for _ in range(MAX_ATTEMPTS):
            reply = scripts.run(
                self._core.client,
                self._core.scripts["get"],
                keys.session_keys(base, sid),
                [str(sid), fresh],
            )
            now = self._core.clock()
            if reply[0] == b"h":
                return self._core.live(codec.decode(reply[1]), now)
            if reply[0] == b"c":
                data = self._core.cold_tier.unpack(reply[1])
                session = self._core.live(codec.decode(data), now)
                if session is None:
                    return None
                self._core.step("promote:read")
                promoted = self._promote(
                    session, data, text(reply[3]), int(reply[4]), now, text(reply[2])
                )
                if promoted[0] == b"moved":
                    self._core.refused()
                    continue  # changed or deleted since it was read
                return self._promoted(session, promoted, now)
            if self._core.cold_tier.in_redis:
                return None
            if reply[1] == b"":
                # The bucket has no fence token (none was needed yet, or Redis lost it): make
                # one, and read again, only if there is a row to promote.
                row = self._core.cold_tier.locate(tenant, sid)
                if row is None or codec.is_expired(row.created_at, now, self._core.max_age):
                    return None
                fresh = token()
                continue
            with self._core.cold_tier.claim(tenant, sid, now - self._core.max_age) as cold:
                if cold.row is None:
                    return None  # no row, deleted, or expired
                self._core.step("promote:claimed")
                data = cold.row.data.encode()
                session = codec.decode(data)
                promoted = self._promote(
                    session, data, cold.row.incarnation, cold.row.generation, now, reply[1]
                )
                if promoted[0] == b"ok":
                    cold.keep()
                    self._core.step("promote:written")
                elif promoted[0] == b"moved":
                    self._core.refused()
                    continue
                return self._promoted(session, promoted, now)
        raise ConflictError(f"session {sid} kept moving between tiers; try again")

    def _promote(
        self,
        session: Session,
        data: bytes,
        incarnation: str,
        generation: int,
        now: datetime,
        check: bytes | str,
    ) -> Any:
        """Run the promote script for a cold session that was just read; ``check`` is the
        version read from the Redis cold hash, or the fence token get.lua gave."""
        args: list[Any] = [
            str(session.id),
            data,
            session.version,
            keys.micros(session.created_at),
            keys.micros(now),
            keys.index_suffixes(session),
            incarnation,
            self._core.cold_tier.name,
            generation,
        ]
        if self._core.cold_tier.in_redis:
            # The cold hash's version is compared as stored: it is the document's own.
            args[2] = check
        else:
            args.append(check)
        # The session enters the idle set: the demotion sweep's hint must know (and one from
        # PostgreSQL may come back to a Redis that lost its registry in a restart).
        hint = (keys.micros(now), keys.micros(session.created_at))
        return self._core.run("promote", session.tenant_id, session.id, args, hint=hint)

    def _promoted(self, session: Session, reply: Any, now: datetime) -> Session | None:
        """The result of a promotion: the session, or the hot copy that won a race."""
        if reply[0] == b"ok":
            return self._core.live(session, now)
        return self._core.live(codec.decode(reply[1]), now)


def _state(row: ColdRow | None) -> str:
    """A claimed row as the save script takes it."""
    if row is None:
        return "none"
    return f"{row.version}:{keys.micros(row.created_at)}:{row.incarnation}:{row.generation}"
