"""The audit store: an append-only record of conversation turns and audit events."""

from stores.audit.inmemory import InMemoryAuditStore
from stores.audit.models import AuditEvent, TurnRecord
from stores.audit.postgres import PostgresAuditStore
from stores.audit.store import AuditStore

__all__ = [
    "AuditEvent",
    "AuditStore",
    "InMemoryAuditStore",
    "PostgresAuditStore",
    "TurnRecord",
]
