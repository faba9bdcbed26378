"""Raw state after a chaos run has quiesced: index entries, sweep sets, copies and rows of
sessions that are not live."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from stores.postgres.engine import normalize_url
from stores.sessions import Session, clients
from tests.chaos.checker import Writer, inc_of
from tests.chaos.common import (
    ChaosConfig,
    text,
)


def inspect_leftovers(
    cfg: ChaosConfig,
    tenants: tuple[UUID, ...],
    writers: list[Writer],
    expired: set[UUID],
) -> dict[str, Any]:
    """Raw state after quiescing: index entries, sweep sets, copies and rows of sessions that
    are not live."""
    live: dict[UUID, Session] = {}
    deleted: set[UUID] = set()
    for writer in writers:
        live.update(writer.live_sessions())
        deleted |= {s.id for s in writer.slots if s.live is None and s.dead}
    suffixes = _suffix_function()

    def what(sid: UUID) -> str:
        if sid in deleted:
            return "deleted"
        if sid in expired:
            return "expired"
        return "unknown"

    found: Counter[str] = Counter()
    resurrected_counts: set[str] = set()
    samples: list[str] = []
    client: Any = clients.from_url(cfg.redis_url)
    try:
        for tenant in tenants:
            base = f"hearth:s:{{{tenant}}}:"
            for key in client.scan_iter(match=base + "i:*", count=1000):
                suffix = text(key)[len(base) + 2 :]
                for member in client.zrange(key, 0, -1):
                    sid = UUID(text(member))
                    session = live.get(sid)
                    if session is None:
                        found[f"index_{what(sid)}"] += 1
                    elif suffixes is not None and suffix not in suffixes(session):
                        found["index_wrong"] += 1
                    else:
                        continue
                    if len(samples) < 10:
                        samples.append(f"{suffix} {sid}")
            for zset in ("idle", "created"):
                for member in client.zrange(base + zset, 0, -1):
                    sid = UUID(text(member))
                    if sid in live:
                        continue
                    found[f"{zset}_{what(sid)}"] += 1
                    if sid in deleted:
                        resurrected_counts.add(str(sid))
            for tier in ("h", "c"):
                for key in client.scan_iter(match=f"{base}{tier}:*", count=1000):
                    sid = UUID(text(key)[len(base) + 2 :])
                    if sid not in live:
                        found[f"copy_{tier}_{what(sid)}"] += 1
    finally:
        client.close()
    if cfg.cold_tier == "postgres" and cfg.database_url:
        _inspect_rows(cfg.database_url, live, what, found)
    orphans = sum(v for k, v in found.items() if k.startswith(("index_", "row_")))
    return {
        "orphan_index_entries": orphans,
        "found": dict(found),
        "samples": samples,
        "resurrected_counts": sorted(resurrected_counts),
        "index_membership_checked": suffixes is not None,
    }


def _inspect_rows(
    database_url: str,
    live: dict[UUID, Session],
    what: Callable[[UUID], str],
    found: Counter[str],
) -> None:
    """Rows of the cold tier table of sessions that are not live, or of older incarnations."""
    engine = sa.create_engine(normalize_url(database_url), poolclass=sa.pool.NullPool)
    try:
        columns = [c["name"] for c in sa.inspect(engine).get_columns("sessions")]
        # A design may keep a deleted session's row, marked by a flag column (``deleted_at``,
        # ``tombstone``) or a ``state`` saying so: such a row is no orphan.
        markers = [c for c in columns if any(w in c.lower() for w in _DEAD_WORDS)]
        if "state" in columns:
            markers.append("state")
        marker_sql = "".join(f', "{c}" AS m_{i}' for i, c in enumerate(markers))
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT id, version, data->'variables'->>'inc' AS inc{marker_sql}"
                    " FROM sessions"
                )
            ).mappings()
            for row in rows:
                marked = any(_marks_dead(row[f"m_{i}"], markers[i]) for i in range(len(markers)))
                session = live.get(row["id"])
                if marked:
                    found["marked_row"] += 1
                elif session is None:
                    found[f"row_{what(row['id'])}"] += 1
                elif row["inc"] is not None and int(row["inc"]) != inc_of(session):
                    # The hot copy is the truth, but this row must never be promoted.
                    found["stale_row_other_incarnation"] += 1
                elif int(row["version"]) > session.version:
                    found["stale_row_newer_version"] += 1
    finally:
        engine.dispose()


_DEAD_WORDS = ("delet", "tomb", "dead")


def _marks_dead(value: Any, column: str) -> bool:
    """Whether a marker column's value says the row is a deleted session's."""
    if column == "state":
        return isinstance(value, str) and any(w in value.lower() for w in _DEAD_WORDS)
    return value not in (None, False, 0, "")


def _suffix_function() -> Callable[[Session], set[str]] | None:
    """The index suffixes of a session as the store's key layout names them, if it says."""
    try:
        from stores.sessions import keys

        index_suffixes = keys.index_suffixes
    except (ImportError, AttributeError):
        return None

    def suffixes(session: Session) -> set[str]:
        return set(str(index_suffixes(session)).split("\n"))

    return suffixes
