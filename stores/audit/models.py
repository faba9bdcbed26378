"""The audit trail's records: one per conversation turn, and the events around them."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from stores.common.clock import utc_now
from stores.common.payload import UtcDatetime

MAX_EVENT_TYPE_LENGTH = 200
"""The longest event type name (in characters)."""


class TurnRecord(BaseModel):
    """What happened in one turn of a session: the messages, what was matched, what it cost.

    Turn records are append-only; ``turn_number`` is unique within a session.
    ``created_at`` is set by the store from its clock when the record is written.
    """

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    session_id: UUID
    turn_number: int = Field(ge=0)
    user_message: str
    assistant_response: str | None = None
    context_extracted: dict[str, Any] = Field(default_factory=dict)
    rules_matched: list[Any] = Field(default_factory=list)
    scenario_state: dict[str, Any] = Field(default_factory=dict)
    tools_executed: list[Any] = Field(default_factory=list)
    token_usage: dict[str, Any] = Field(default_factory=dict)
    latency_ms: int | None = Field(default=None, ge=0)
    created_at: UtcDatetime = Field(default_factory=utc_now)


class AuditEvent(BaseModel):
    """Something worth keeping a record of, optionally tied to a session and a turn.

    ``event_type`` is free text (for example ``"rule.matched"`` or ``"tool.failed"``);
    ``turn_id``, when set, must name a turn record of the same tenant.
    ``created_at`` is set by the store from its clock when the event is written.
    """

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    session_id: UUID | None = None
    turn_id: UUID | None = None
    event_type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_LENGTH)
    event_data: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDatetime = Field(default_factory=utc_now)
