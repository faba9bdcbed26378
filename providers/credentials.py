"""Finding a provider's API key without ever showing it."""

from __future__ import annotations

import os

from pydantic import SecretStr

from providers.redaction import register_secret
from providers.translate import missing_key


def resolve_api_key(api_key: str | SecretStr | None, *, provider: str, env_var: str) -> str:
    """The key given, else the vendor's standard environment variable; raise if neither.

    The key found is registered for redaction (:mod:`providers.redaction`), so that no
    error or log record of this process can show it.

    Raises:
        AuthenticationError: no key anywhere (before any network call).
    """
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if api_key is None:
        api_key = os.environ.get(env_var)
    if not api_key or not api_key.strip():
        raise missing_key(provider, env_var)
    register_secret(api_key)
    return api_key.strip()
