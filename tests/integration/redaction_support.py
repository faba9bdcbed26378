"""Credentials for the redaction test, and a schema module whose attributes cannot be read.

``generate_structured`` given ``"tests.integration.redaction_support:Anything"`` fails with
a RuntimeError that names :data:`CONFIGURED_KEY` and :data:`ECHOED_KEY`: an unexpected
exception, stored in the result backend and sent in the task-failed event with its
traceback.
"""

from __future__ import annotations

CONFIGURED_KEY = "hearth-configured-provider-credential-93af0c"
"""The worker's Anthropic key: shaped like no known credential, so only its registration
can redact it."""

ECHOED_KEY = "sk-proj-EchoedButNeverConfigured0042"
"""A key the worker never had, caught by its shape."""

BEARER = "tok_abcdef0123456789"
"""A bearer token the server quotes."""

SECRETS = (CONFIGURED_KEY, ECHOED_KEY, BEARER)


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    raise RuntimeError(f"cannot load {name}: the proxy refused {CONFIGURED_KEY} ({ECHOED_KEY})")
