"""OpenAIEmbeddingProvider against the fake Embeddings API: sizes, order and chunking."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers import EmbeddingProvider, OpenAIEmbeddingProvider
from providers.errors import InvalidRequestError, ModelError, TransientProviderError
from tests.fakes import replies
from tests.fakes.server import OPENAI_EMBEDDINGS, FakeProviderServer

KEY = "sk-test-embeddings-0123456789"


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as fake:
        yield fake


def make(server: FakeProviderServer, **kwargs: object) -> OpenAIEmbeddingProvider:
    return OpenAIEmbeddingProvider(api_key=KEY, base_url=server.openai_base_url, **kwargs)  # type: ignore[arg-type]


def test_embed_returns_the_models_vector(server: FakeProviderServer) -> None:
    provider = make(server)
    assert isinstance(provider, EmbeddingProvider)
    assert provider.model_id == "text-embedding-3-small"
    assert provider.dimensions == 1536
    vector = provider.embed("the cat sat on the mat")
    assert vector == pytest.approx(replies.fake_embedding("the cat sat on the mat", 1536), abs=1e-6)

    (request,) = server.requests_for(OPENAI_EMBEDDINGS)
    assert request.path == "/v1/embeddings"
    assert request.body["model"] == "text-embedding-3-small"
    assert request.body["input"] == ["the cat sat on the mat"]
    assert request.body["dimensions"] == 1536


def test_dimensions_are_sent_to_text_embedding_3_models(server: FakeProviderServer) -> None:
    provider = make(server, model="text-embedding-3-large", dimensions=256)
    assert provider.dimensions == 256
    vectors = provider.embed_batch(["a", "b"])
    assert [len(v) for v in vectors] == [256, 256]
    assert server.requests[0].body["dimensions"] == 256


def test_dimensions_are_not_sent_to_ada(server: FakeProviderServer) -> None:
    provider = make(server, model="text-embedding-ada-002")
    assert provider.dimensions == 1536
    provider.embed("hello")
    assert "dimensions" not in server.requests[0].body


def test_an_unknown_model_needs_its_dimensions_and_is_not_sent_them(
    server: FakeProviderServer,
) -> None:
    with pytest.raises(InvalidRequestError, match="pass its dimensions"):
        make(server, model="my-embedder")
    provider = make(server, model="my-embedder", dimensions=1536)
    provider.embed("hello")
    assert "dimensions" not in server.requests[0].body


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "text-embedding-ada-002", "dimensions": 512}, "cannot be shortened"),
        ({"model": "text-embedding-3-small", "dimensions": 2048}, "at most 1536"),
        ({"dimensions": 0}, "positive"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 5000}, "max_batch_size"),
        ({"model": " "}, "model"),
    ],
)
def test_bad_constructor_arguments(
    server: FakeProviderServer, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        make(server, **kwargs)


def test_batch_keeps_input_order_even_if_the_reply_is_shuffled(
    server: FakeProviderServer,
) -> None:
    provider = make(server, dimensions=4)
    reply = replies.openai_embeddings([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    reply.body["data"].reverse()
    server.enqueue(OPENAI_EMBEDDINGS, reply)
    vectors = provider.embed_batch(["first", "second", "third"])
    assert vectors == [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]


def test_batch_is_chunked_by_count(server: FakeProviderServer) -> None:
    provider = make(server, dimensions=8, max_batch_size=3)
    texts = [f"text {i}" for i in range(7)]
    vectors = provider.embed_batch(texts)
    sent = [r.body["input"] for r in server.requests_for(OPENAI_EMBEDDINGS)]
    assert sent == [texts[0:3], texts[3:6], texts[6:7]]
    assert vectors == [pytest.approx(replies.fake_embedding(t, 8), abs=1e-6) for t in texts]


def test_batch_is_chunked_by_the_per_request_token_budget(server: FakeProviderServer) -> None:
    provider = make(server, dimensions=8)
    # 60 kB each: 20 of them are far over 300k tokens by the packing estimate (3 bytes/token).
    texts = [f"{i:02d}" + "word " * 12_000 for i in range(20)]
    vectors = provider.embed_batch(texts)
    sent = [r.body["input"] for r in server.requests_for(OPENAI_EMBEDDINGS)]
    assert len(sent) > 1
    assert [t for chunk in sent for t in chunk] == texts
    assert all(sum(len(t) for t in chunk) / 3 <= 300_000 for chunk in sent)
    assert len(vectors) == 20


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        ([], "empty"),
        (["fine", "   "], r"texts\[1\] is empty"),
        (["fine", 3], r"texts\[1\] must be a string"),
        ("just one string", "not one string"),
        (["ok", "x" * 70_000], r"texts\[1\] is too long"),
    ],
)
def test_bad_batches_fail_before_any_call(
    server: FakeProviderServer, texts: list[str], match: str
) -> None:
    provider = make(server)
    with pytest.raises(InvalidRequestError, match=match):
        provider.embed_batch(texts)
    assert server.requests == []


@pytest.mark.parametrize("text", ["", "  \n", "x" * 70_000])
def test_bad_single_texts_fail_before_any_call(server: FakeProviderServer, text: str) -> None:
    provider = make(server)
    with pytest.raises(InvalidRequestError, match="text"):
        provider.embed(text)
    assert server.requests == []


def test_vectors_of_the_wrong_size_are_a_model_error(server: FakeProviderServer) -> None:
    provider = make(server, dimensions=8)
    server.enqueue(OPENAI_EMBEDDINGS, replies.openai_embeddings([[0.5] * 7]))
    with pytest.raises(ModelError, match="7 dimensions"):
        provider.embed("hello")


def test_a_reply_with_too_few_vectors_is_transient(server: FakeProviderServer) -> None:
    provider = make(server, dimensions=2)
    server.enqueue(OPENAI_EMBEDDINGS, replies.openai_embeddings([[0.5, 0.5]]))
    with pytest.raises(TransientProviderError, match="asked for 2"):
        provider.embed_batch(["a", "b"])


def test_float_encoded_replies_are_read_too(server: FakeProviderServer) -> None:
    provider = make(server, dimensions=3)
    server.enqueue(OPENAI_EMBEDDINGS, replies.openai_embeddings([[0.25, -0.5, 1.0]]))
    assert provider.embed("x") == [0.25, -0.5, 1.0]


def test_repr_shows_model_and_size_only(server: FakeProviderServer) -> None:
    provider = make(server, dimensions=64)
    assert repr(provider) == (
        "OpenAIEmbeddingProvider(model='text-embedding-3-small', dimensions=64, "
        f"base_url='{server.openai_base_url}')"
    )
