"""The embedding backfill stops before its next page once its periodic lock is lost."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4

from providers.base import EmbeddingProvider
from stores.config import InMemoryConfigStore
from stores.memory import Episode, InMemoryMemoryStore
from workers.tasks import backfill

DIMENSIONS = 3


class _Embedder(EmbeddingProvider):
    """The same small vector for every text, counting the batches it embeds."""

    def __init__(self) -> None:
        self.batches = 0

    @property
    def model_id(self) -> str:
        return "test-model"

    @property
    def dimensions(self) -> int:
        return DIMENSIONS

    def embed(self, text: str) -> list[float]:
        return [1.0, 0.0, 0.0]

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches += 1
        return [self.embed(text) for text in texts]

    def close(self) -> None:
        pass


def test_a_lost_lock_stops_the_backfill_before_the_next_page() -> None:
    config = InMemoryConfigStore(dimensions=DIMENSIONS)
    memory = InMemoryMemoryStore(dimensions=DIMENSIONS)
    tenant, agent = uuid4(), uuid4()
    for i in range(5):
        memory.add_episode(Episode(tenant_id=tenant, agent_id=agent, content=f"m{i}"))
    embedder = _Embedder()

    def lost_once_a_page_is_embedded() -> bool:
        return embedder.batches >= 1

    result = backfill.backfill_embeddings(
        config, memory, embedder, batch_size=2, lock_lost=lost_once_a_page_is_embedded
    )

    assert embedder.batches == 1
    assert result.embedded["episodes"] == 2
    assert (result.lock_lost, result.budget_spent) == (True, False)
    assert result.as_dict()["lock_lost"] is True

    rest = backfill.backfill_embeddings(config, memory, embedder, batch_size=2)

    assert rest.embedded["episodes"] == 3
    assert (rest.lock_lost, rest.budget_spent) == (False, False)
