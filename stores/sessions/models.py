"""The session domain: a conversation's state, its status, and the tier it lives in."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, ValidationInfo

from stores.common.checks import INT32_MAX
from stores.common.clock import utc_now
from stores.common.payload import UtcDatetime

MAX_CHANNEL_LENGTH = 200
"""The longest channel name (``whatsapp``, ``web``, ...)."""

MAX_IDENTIFIER_LENGTH = 1000
"""The longest user channel id or step id."""

MAX_VERSION = 2**63 - 1
"""The highest session ``version``: the PostgreSQL cold tier keeps it in a ``bigint``."""

MAX_SCENARIO_VERSION = INT32_MAX
"""The highest scenario version or turn number: PostgreSQL ``integer`` columns hold them (the
cold tier's ``active_scenario_version``, the configuration store's scenario versions, the audit
store's turn numbers)."""

STORED = {"stored": True}
"""The validation context of a document read back from a tier: upper bounds added after it
may have been stored are not applied, so that older data stays readable."""


def _at_most(limit: int) -> AfterValidator:
    def check(value: int, info: ValidationInfo) -> int:
        if value > limit and not (info.context or {}).get("stored"):
            raise ValueError(f"must be at most {limit}")
        return value

    return AfterValidator(check)


ScenarioInt = Annotated[int, Field(ge=0), _at_most(MAX_SCENARIO_VERSION)]
"""A scenario version or turn number."""


class SessionStatus(StrEnum):
    """Where a conversation stands; independent of the tier the session is stored in."""

    ACTIVE = "ACTIVE"
    IDLE = "IDLE"
    CLOSED = "CLOSED"
    ESCALATED = "ESCALATED"
    EXPIRED = "EXPIRED"


class Tier(StrEnum):
    """The storage tier of a session: HOT (fast, in memory) or COLD (demoted, compact)."""

    HOT = "HOT"
    COLD = "COLD"


class StepVisit(BaseModel):
    """One step a session entered in a scenario."""

    # Validated again inside a session being saved: it may have been changed since.
    model_config = ConfigDict(extra="forbid", revalidate_instances="always")

    step_id: str = Field(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)
    scenario_id: UUID | None = None
    scenario_version: ScenarioInt | None = None
    entered_at: UtcDatetime
    turn_number: ScenarioInt | None = None
    reason: str | None = Field(default=None, max_length=MAX_IDENTIFIER_LENGTH)


class PendingMigration(BaseModel):
    """A deployed scenario migration plan this session still has to go through.

    The scenario migration sweep sets it on every session that is on ``from_version`` of the
    scenario; the conversation engine applies the plan at the next turn and clears it.
    """

    model_config = ConfigDict(extra="forbid", revalidate_instances="always")

    plan_id: UUID
    scenario_id: UUID
    from_version: ScenarioInt
    to_version: ScenarioInt
    marked_at: UtcDatetime | None = None


class Session(BaseModel):
    """A conversation's state.

    ``version``, ``created_at`` and ``last_activity_at`` belong to the store: ``save`` sets
    them. A new session has ``version == 0``; every save stores ``version + 1``.
    ``variables`` holds plain JSON data only: string keys, finite numbers, within the limits
    every tier can store and give back (see :mod:`stores.sessions.codec`).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    customer_profile_id: UUID | None = None
    channel: str = Field(min_length=1, max_length=MAX_CHANNEL_LENGTH)
    user_channel_id: str = Field(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)
    status: SessionStatus = SessionStatus.ACTIVE
    variables: dict[str, JsonValue] = Field(default_factory=dict)
    active_scenario_id: UUID | None = None
    active_scenario_version: ScenarioInt | None = None
    current_step_id: str | None = Field(default=None, max_length=MAX_IDENTIFIER_LENGTH)
    step_history: list[StepVisit] = Field(default_factory=list)
    pending_migration: PendingMigration | None = None
    version: Annotated[int, _at_most(MAX_VERSION)] = Field(default=0, ge=0)
    created_at: UtcDatetime = Field(default_factory=utc_now)
    last_activity_at: UtcDatetime = Field(default_factory=utc_now)


class TierStats(BaseModel):
    """How many sessions each tier holds and roughly how many bytes they take.

    Byte counts of Redis tiers are estimates from sampled ``MEMORY USAGE``; a PostgreSQL cold
    tier reports the size of the table with its indexes.
    """

    model_config = ConfigDict(extra="forbid")

    hot_sessions: int = 0
    hot_bytes: int = 0
    cold_sessions: int = 0
    cold_bytes: int = 0
