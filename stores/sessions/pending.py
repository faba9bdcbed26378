"""Commands sent to one Redis now and read later, so that the client works meanwhile.

A sweep over many small tenants spends about as long in Python (reading replies, packing
documents, building the next call) as Redis spends running its scripts; done in turn, the
two add up. :class:`Pending` sends a group's script calls on a connection of its own and
reads their replies only when asked, so the next group's Python work overlaps this group's
run on the server. Only calls that need nothing from each other's replies go out together
(see ``Sweeps._demote_tenants``): their order on the server does not matter.
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis
from redis.exceptions import ResponseError


class Pending:
    """Commands already sent on a connection taken from ``client``'s pool, whose replies
    :meth:`replies` reads (the connection goes back to the pool then, or is dropped by
    :meth:`abandon` if they are never read)."""

    def __init__(self, client: redis.Redis, commands: list[tuple[Any, ...]]) -> None:
        self._pool = client.connection_pool
        self._count = len(commands)
        connection: Any = self._pool.get_connection()
        self._connection: Any = connection
        try:
            # hiredis packs each command in one call: redis-py's packer would first look at
            # every argument in Python, which a sweep of many small tenants pays per key.
            connection.send_packed_command([hiredis.pack_command(c) for c in commands])
        except BaseException:
            self.abandon()
            raise

    def replies(self) -> list[Any]:
        """The replies in order, an error reply in the place of its command."""
        connection = self._connection
        if connection is None:
            raise RuntimeError("the replies were read or abandoned already")
        out: list[Any] = []
        try:
            for _ in range(self._count):
                try:
                    out.append(connection.read_response())
                except ResponseError as exc:
                    out.append(exc)
        except BaseException:
            self.abandon()
            raise
        self._connection = None
        self._pool.release(connection)
        return out

    def abandon(self) -> None:
        """Drop the connection with whatever replies it still has unread (a pooled
        connection must not carry them to its next user)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self._pool.release(connection)
