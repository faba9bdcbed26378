"""How many times a provider task's message was delivered, counted in Redis.

A provider task runs with ``acks_late`` and ``reject_on_worker_lost``: when the process
running it dies (SIGKILL, OOM), the broker delivers the same message again at once, with
``request.retries`` unchanged and no header that ``self.retry`` would have added. Neither
classic RabbitMQ queues nor the Redis transport count deliveries, so hearth does, per task
id, in one hash (:func:`delivery_key`), before the provider is called.

The rule
    ``self.retry`` keeps the task id and sends a *new* message whose ``request.retries`` is
    one higher; a redelivery repeats the *same* message, ``request.retries`` included. So
    each attempt number is one message, and a delivery of an attempt number already seen
    means that an earlier delivery of it was lost with its worker. The hash keeps the
    highest attempt seen, how many times it was delivered, and the deliveries *lost* over
    the task's whole life (retries included). Then, at each delivery:

    * a new attempt (a first delivery, or a retry) is counted and runs: retries are bounded
      by ``HEARTH_PROVIDER_MAX_ATTEMPTS``, not here;
    * a repeated attempt counts one lost delivery; once ``HEARTH_PROVIDER_MAX_DELIVERIES``
      deliveries were lost, the task fails with :class:`RedeliveryLimitError` without
      calling the provider (and its message is acknowledged);
    * an attempt older than one already seen is *stale*: its worker died after sending the
      retry and before acknowledging. It is dropped without a call, a count or a result.
      (Should it come back before the retry's message does, it counts as a lost delivery.)

    A task whose every delivery kills its worker thus calls the provider
    ``MAX_DELIVERIES`` times; a task at most ``MAX_ATTEMPTS + MAX_DELIVERIES - 1`` times.

The first delivery's time (``f``) is kept too: provider tasks count their deadline from it,
across retries and redeliveries alike. The hash expires ``ttl`` seconds after the last
delivery (the task's deadline plus the broker's visibility timeout, after which no
delivery of it can come, plus a margin). Everything happens in one Lua script, so two
deliveries racing (a redelivery beside a retry) see one consistent count.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.commands.core import Script

from providers.errors import ProviderError
from workers.keys import PREFIX

DELIVERY_PREFIX = f"{PREFIX}delivery:"
"""``<DELIVERY_PREFIX><task id>``: a hash counting the deliveries of one provider task."""

TTL_MARGIN_SECONDS = 3600
"""How long a delivery hash outlives the last delivery the broker could still make."""


class RedeliveryLimitError(ProviderError):
    """The task's deliveries were lost with their worker too many times; it was given up."""


class Verdict(enum.Enum):
    """What a delivery may do."""

    RUN = "run"
    GIVE_UP = "give_up"
    STALE = "stale"


@dataclass(frozen=True)
class Delivery:
    """One delivery of a provider task, as counted.

    Attributes:
        attempt: ``request.retries`` of the message (0 for the first attempt).
        deliveries: how many times this attempt's message was delivered, this one included.
        lost: deliveries of the task lost with their worker, over all its attempts.
        first_delivered_at: the Unix time of the task's first delivery.
        stale: an attempt older than one already seen.
    """

    attempt: int
    deliveries: int
    lost: int
    first_delivered_at: float
    stale: bool = False

    @property
    def total(self) -> int:
        """Deliveries of the task in all, this one included (attempts plus lost ones)."""
        return self.attempt + 1 + self.lost


def delivery_key(task_id: str) -> str:
    """The key of a provider task's delivery hash."""
    return f"{DELIVERY_PREFIX}{task_id}"


def ttl_seconds(deadline: float, visibility_timeout: float) -> int:
    """How long a delivery hash lives after its last delivery."""
    return math.ceil(deadline + visibility_timeout) + TTL_MARGIN_SECONDS


@cache
def _source() -> str:
    return (resources.files("workers") / "deliveries.lua").read_text()


def record(client: Any, task_id: str, attempt: int, *, now: float, ttl: int) -> Delivery:
    """Count one delivery of ``task_id``'s attempt ``attempt`` at ``now`` (Unix seconds).

    Raises:
        redis.RedisError: the count could not be made.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0; got {attempt!r}")
    # register_script only hashes the source; the server loads it on first use (EVALSHA).
    script: Script = client.register_script(_source())
    reply = script(keys=[delivery_key(task_id)], args=[attempt, repr(now), ttl])
    deliveries, lost, first, stale = reply
    first_at = float(first.decode() if isinstance(first, bytes) else first)
    return Delivery(
        attempt=attempt,
        deliveries=int(deliveries),
        lost=int(lost),
        first_delivered_at=first_at if math.isfinite(first_at) else now,
        stale=bool(int(stale)),
    )


def verdict(delivery: Delivery, max_deliveries: int) -> Verdict:
    """Whether ``delivery`` may call the provider, under the rule of the module docstring."""
    if delivery.stale:
        return Verdict.STALE
    if delivery.lost >= max_deliveries:
        return Verdict.GIVE_UP
    return Verdict.RUN


def give_up_error(
    task_name: str, task_id: str, delivery: Delivery, max_deliveries: int
) -> RedeliveryLimitError:
    """The error a task given up on fails with; it names the task, never its arguments."""
    return RedeliveryLimitError(
        f"provider task {task_name}[{task_id}] was delivered {delivery.total} times and was "
        f"given up: its worker was lost {delivery.lost} times "
        f"(HEARTH_PROVIDER_MAX_DELIVERIES={max_deliveries})",
        error_type="redelivery_limit",
    )
