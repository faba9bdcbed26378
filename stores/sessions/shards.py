"""Shards of the sweeps: the tenants split into buckets, the buckets dealt out to shards.

Every tenant falls in one of :data:`BUCKETS` buckets by its id (the Redis store keeps its
tenant registry and the sweeps' hints per bucket, each bucket in its own hash slot). A
:class:`Shard` ``(index, count)`` owns the buckets ``index, index + count, ...``: the
``count`` shards of one split partition the tenants, so as many sweeps, one per shard, share
the work of one sweep, none of them reading the buckets of another.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from stores.errors import InvalidInputError

BUCKETS = 64
"""How many buckets the tenants are split into; the most shards a sweep can have."""


def bucket_of(tenant_id: UUID) -> int:
    """The bucket of a tenant: the low bits of its id (the last byte's, since 64 divides 256,
    so SQL can compute it too: ``get_byte(uuid_send(tenant_id), 15) % 64``)."""
    return tenant_id.int % BUCKETS


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the tenants whose bucket is ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            if type(getattr(self, name)) is not int:
                raise InvalidInputError(f"shard {name} must be an integer", field="shard")
        if not 1 <= self.count <= BUCKETS:
            raise InvalidInputError(f"shard count must be 1 to {BUCKETS}", field="shard")
        if not 0 <= self.index < self.count:
            raise InvalidInputError("shard index must be 0 to count - 1", field="shard")

    @classmethod
    def split(cls, count: int) -> list[Shard]:
        """The ``count`` shards that together cover every tenant once."""
        return [cls(index, count) for index in range(count)]

    @property
    def buckets(self) -> range:
        """The buckets this shard owns."""
        return range(self.index, BUCKETS, self.count)

    def owns(self, tenant_id: UUID) -> bool:
        """Whether the tenant's bucket is one of this shard's."""
        return bucket_of(tenant_id) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


ALL = Shard(0, 1)
"""The one shard of a sweep that is not split."""


def buckets_of(shard: Shard | None) -> range:
    """The buckets a sweep of ``shard`` reads (every bucket without one)."""
    return (shard or ALL).buckets


def check_shard(shard: object) -> Shard | None:
    """``shard`` if it is a Shard or None, else InvalidInputError."""
    if shard is not None and not isinstance(shard, Shard):
        raise InvalidInputError("shard must be a Shard or None", field="shard")
    return shard
