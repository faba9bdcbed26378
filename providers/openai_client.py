"""Building the OpenAI SDK client the OpenAI providers share."""

from __future__ import annotations

import openai
from pydantic import SecretStr

from providers import checks
from providers.credentials import resolve_api_key
from providers.http import shared_ssl_context

PROVIDER = "openai"
API_KEY_ENV = "OPENAI_API_KEY"


def build_client(
    api_key: str | SecretStr | None, base_url: str | None, timeout: float, max_retries: int
) -> openai.OpenAI:
    """An SDK client with the key (given or ``OPENAI_API_KEY``), timeout and retries.

    Raises:
        AuthenticationError: no key given and none in the environment.
        InvalidRequestError: a bad timeout or retry count.
    """
    key = resolve_api_key(api_key, provider=PROVIDER, env_var=API_KEY_ENV)
    return openai.OpenAI(
        api_key=key,
        base_url=base_url,
        timeout=checks.check_timeout(timeout),
        max_retries=checks.check_max_retries(max_retries),
        http_client=openai.DefaultHttpxClient(verify=shared_ssl_context()),
    )


def secrets_of(client: openai.OpenAI) -> tuple[str | None, ...]:
    """The client's credentials, to redact from messages."""
    key = client.api_key
    return (key if isinstance(key, str) else None,)
