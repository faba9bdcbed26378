"""Commands sent now and read later (stores/sessions/pending.py), on a real Redis."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ResponseError

from stores.sessions.pending import Pending

pytestmark = pytest.mark.redis


def test_replies_come_in_order_with_an_error_in_place(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("pending:s", "text")
    first = Pending(client, [("SET", "pending:a", "1"), ("INCR", "pending:a")])
    second = Pending(client, [("HGET", "pending:s", "f"), ("GET", "pending:s")])
    # Read in the other order: each has its own connection.
    got = second.replies()
    assert isinstance(got[0], ResponseError)  # WRONGTYPE, in the place of its command
    assert got[1] == b"text"
    assert first.replies() == [b"OK", 2]  # raw replies: no response callbacks
    with pytest.raises(RuntimeError):
        first.replies()
    client.close()


def test_an_abandoned_send_leaves_no_reply_for_the_next_user(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, max_connections=1)
    Pending(client, [("SET", "pending:b", "x"), ("GET", "pending:b")]).abandon()
    # The pool's one connection was dropped, not handed on with two replies unread.
    assert client.get("pending:b") == b"x"
    assert client.ping() is True
    client.close()
