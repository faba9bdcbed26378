"""Shards of the sweeps: every split partitions the buckets, and so the tenants."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from stores.errors import InvalidInputError
from stores.sessions import Shard
from stores.sessions.shards import BUCKETS, bucket_of, buckets_of


@pytest.mark.parametrize("count", range(1, BUCKETS + 1))
def test_the_shards_of_a_split_own_every_bucket_once(count: int) -> None:
    owned = [bucket for shard in Shard.split(count) for bucket in shard.buckets]

    assert sorted(owned) == list(range(BUCKETS))
    assert len(Shard.split(count)) == count


def test_a_tenant_belongs_to_the_shard_that_owns_its_bucket() -> None:
    tenants = [uuid4() for _ in range(500)]
    for count in (1, 3, 8, 64):
        for tenant in tenants:
            owners = [shard for shard in Shard.split(count) if shard.owns(tenant)]
            assert len(owners) == 1
            assert bucket_of(tenant) in owners[0].buckets


def test_the_bucket_is_the_low_six_bits_of_the_id() -> None:
    # The PostgreSQL cold tier computes it from the id's last byte (cold_sql.owned_by).
    assert bucket_of(UUID(int=(5 << 64) | 0xFF)) == 63
    assert bucket_of(UUID(int=0x140)) == 0
    assert buckets_of(None) == range(BUCKETS)
    assert buckets_of(Shard(2, 8)) == range(2, BUCKETS, 8)


@pytest.mark.parametrize(
    ("index", "count"), [(0, 0), (1, 1), (-1, 4), (4, 4), (0, BUCKETS + 1), (True, 2), (0, 2.0)]
)
def test_a_shard_out_of_range_is_invalid_input(index: object, count: object) -> None:
    with pytest.raises(InvalidInputError):
        Shard(index, count)  # type: ignore[arg-type]
