"""The retry backoff: exponential with full jitter, retry_after floor, caps and deadline."""

from __future__ import annotations

import random

import pytest

from providers.errors import (
    AuthenticationError,
    ContentFilterError,
    InvalidRequestError,
    ModelError,
    ProviderError,
    RateLimitError,
    StructuredOutputError,
    TransientProviderError,
)
from workers.backoff import (
    NEVER_RETRY,
    RETRYABLE_ERRORS,
    BackoffPolicy,
    compute_backoff,
    countdown_for,
    is_retryable,
)

POLICY = BackoffPolicy(base=1.0, factor=2.0, max_delay=60.0, max_attempts=10, deadline=1000.0)


def top(_: float = 0.0) -> float:
    """The largest value random.random() can return."""
    return 1.0 - 1e-12


def test_ceiling_doubles_per_attempt_until_max_delay() -> None:
    ceilings = [compute_backoff(n, elapsed=0, policy=POLICY, rng=top) for n in range(1, 9)]
    assert ceilings == pytest.approx([1, 2, 4, 8, 16, 32, 60, 60])


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    rng = random.Random(7)
    delays = [compute_backoff(4, elapsed=0, policy=POLICY, rng=rng.random) for _ in range(2000)]
    assert all(d is not None and 0 <= d < 8 for d in delays)
    values = [d for d in delays if d is not None]
    assert min(values) < 0.2
    assert max(values) > 7.8
    assert 3.6 < sum(values) / len(values) < 4.4


def test_zero_jitter_gives_zero_without_retry_after() -> None:
    assert compute_backoff(3, elapsed=0, policy=POLICY, rng=lambda: 0.0) == 0.0


def test_retry_after_is_a_floor() -> None:
    assert compute_backoff(1, elapsed=0, policy=POLICY, retry_after=7.5, rng=lambda: 0.0) == 7.5
    # A larger jittered delay is kept.
    assert compute_backoff(6, elapsed=0, policy=POLICY, retry_after=1.0, rng=top) == (
        pytest.approx(32)
    )


def test_countdown_stays_below_visibility_timeout_even_against_retry_after() -> None:
    policy = BackoffPolicy(max_delay=10_000, visibility_timeout=100, deadline=100_000)
    for attempts in range(1, 6):
        delay = compute_backoff(attempts, elapsed=0, policy=policy, retry_after=500, rng=top)
        assert delay is not None
        assert delay < 100
        assert delay == policy.max_countdown == 95


def test_deadline_caps_the_countdown() -> None:
    delay = compute_backoff(6, elapsed=990, policy=POLICY, rng=top)
    assert delay == pytest.approx(10)


def test_no_retry_once_the_deadline_has_passed() -> None:
    assert compute_backoff(1, elapsed=1000, policy=POLICY) is None
    assert compute_backoff(1, elapsed=5000, policy=POLICY) is None


def test_no_retry_when_the_servers_wait_ends_past_the_deadline() -> None:
    assert compute_backoff(1, elapsed=990, policy=POLICY, retry_after=20) is None
    assert compute_backoff(1, elapsed=990, policy=POLICY, retry_after=5, rng=lambda: 0) == 5


def test_max_attempts_counts_the_first_attempt() -> None:
    policy = BackoffPolicy(max_attempts=3)
    assert compute_backoff(1, elapsed=0, policy=policy) is not None
    assert compute_backoff(2, elapsed=0, policy=policy) is not None
    assert compute_backoff(3, elapsed=0, policy=policy) is None


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = BackoffPolicy(max_attempts=10_000, factor=10.0)
    assert compute_backoff(5000, elapsed=0, policy=policy, rng=top) == pytest.approx(300)


def test_negative_retry_after_is_ignored() -> None:
    assert compute_backoff(1, elapsed=0, policy=POLICY, retry_after=-3, rng=lambda: 0) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0},
        {"max_delay": -1},
        {"deadline": float("inf")},
        {"visibility_timeout": 0},
        {"factor": 0.5},
        {"max_attempts": 0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        compute_backoff(0, elapsed=0, policy=POLICY)


def test_retryable_and_never_retry_sets_are_disjoint_and_cover_every_error() -> None:
    assert set(RETRYABLE_ERRORS) == {RateLimitError, TransientProviderError}
    assert set(NEVER_RETRY) == {
        AuthenticationError,
        ModelError,
        InvalidRequestError,
        ContentFilterError,
        StructuredOutputError,
    }
    assert not set(RETRYABLE_ERRORS) & set(NEVER_RETRY)
    # Subclasses defined elsewhere (the workers' settings error) are not the provider tree.
    subclasses = {c for c in ProviderError.__subclasses__() if c.__module__ == "providers.errors"}
    assert subclasses == set(RETRYABLE_ERRORS) | set(NEVER_RETRY)


def test_is_retryable() -> None:
    assert is_retryable(RateLimitError("slow down"))
    assert is_retryable(TransientProviderError("timeout"))
    assert not is_retryable(AuthenticationError("bad key"))
    assert not is_retryable(ProviderError("unknown"))
    assert not is_retryable(RuntimeError("bug"))


def test_countdown_for_uses_the_rate_limit_retry_after() -> None:
    error = RateLimitError("slow down", retry_after=12.0)
    assert countdown_for(error, 1, elapsed=0, policy=POLICY, rng=lambda: 0) == 12.0
    transient = TransientProviderError("overloaded")
    assert countdown_for(transient, 2, elapsed=0, policy=POLICY, rng=lambda: 0.5) == 1.0


@pytest.mark.parametrize("error_cls", NEVER_RETRY)
def test_countdown_for_fails_fast_on_never_retry_errors(error_cls: type[ProviderError]) -> None:
    assert countdown_for(error_cls("no"), 1, elapsed=0, policy=POLICY) is None
