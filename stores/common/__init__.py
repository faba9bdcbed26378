"""Pieces every store domain shares: clock, ids, pagination, validation."""

from stores.common.clock import Clock, utc_now
from stores.common.pagination import Page, decode_cursor, encode_cursor
from stores.common.validation import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    MAX_LIMIT,
    MAX_TEXT_LENGTH,
    check_limit,
    check_text,
    parse_enum,
    parse_id,
    validate_embedding,
)

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "MAX_LIMIT",
    "MAX_TEXT_LENGTH",
    "Clock",
    "Page",
    "check_limit",
    "check_text",
    "decode_cursor",
    "encode_cursor",
    "parse_enum",
    "parse_id",
    "utc_now",
    "validate_embedding",
]
