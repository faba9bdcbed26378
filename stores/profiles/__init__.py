"""Customer profiles: identities across channels, field history, assets, and merges."""

from stores.profiles.inmemory import InMemoryProfileStore
from stores.profiles.models import (
    ChannelIdentity,
    CustomerProfile,
    FieldSource,
    ProfileAsset,
    ProfileField,
)
from stores.profiles.postgres import PostgresProfileStore
from stores.profiles.store import ProfileStore

__all__ = [
    "ChannelIdentity",
    "CustomerProfile",
    "FieldSource",
    "InMemoryProfileStore",
    "PostgresProfileStore",
    "ProfileAsset",
    "ProfileField",
    "ProfileStore",
]
