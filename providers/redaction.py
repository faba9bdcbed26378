"""Keeping credentials out of every string hearth shows: errors, results, events and logs.

Two things are replaced by :data:`REDACTED`:

* the *configured keys*: every key a provider was built with (registered by
  :func:`providers.credentials.resolve_api_key`) and every key registered with
  :func:`register_secret` (the workers register the keys of their settings at start, so a
  process that never builds a provider still knows them);
* anything *shaped like a credential*: OpenAI and Anthropic keys (``sk-…``, ``sk-proj-…``,
  ``sk-ant-…``), ``Bearer`` tokens, the value of an ``Authorization`` or ``x-api-key``
  header, JSON Web Tokens, and long opaque values in ``key=…`` / ``"token": "…"`` forms
  (a name ending in key, token, secret, password or signature).

The shapes are kept narrow so that ordinary text survives: ``sk-`` must start a word
(``task-force`` and ``desk-lamp`` are left alone), a bearer token needs a digit or twenty
characters (``the bearer of bad news`` is left alone), and a ``key=`` value needs sixteen
characters of token alphabet.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: replacing them everywhere would mangle ordinary text."""

_TOKEN = r"[A-Za-z0-9._~+/\-]"

_WHOLE = (
    # OpenAI and Anthropic keys (sk-..., sk-proj-..., sk-ant-api03-...), masked or not.
    re.compile(r"(?<![A-Za-z0-9_\-])sk-[A-Za-z0-9_\-*.]{6,}"),
    # JSON Web Tokens: three base64url parts, the first two JSON objects ("eyJ").
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
)
_PREFIXED = (
    re.compile(
        r"(?i)(\bbearer\s+)(?:(?=" + _TOKEN + r"*\d)" + _TOKEN + r"{8,}|" + _TOKEN + r"{20,})=*"
    ),
    re.compile(
        r"(?i)(\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|token)\s+)?)"
        r"[^\s'\",}]+"
    ),
    re.compile(r"(?i)(\bx-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    re.compile(
        r"(?i)(\b[A-Za-z0-9_\-]*(?:key|token|secret|password|passwd|signature)['\"]?\s*[:=]\s*"
        r"['\"]?)" + _TOKEN + r"{16,}=*"
    ),
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secret(secret: str | None) -> None:
    """Redact ``secret`` from now on in this process (ignored when shorter than 8 characters)."""
    global _secrets
    if not secret:
        return
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH or secret in _secrets:
        return
    with _lock:
        _secrets = _secrets | {secret}


def registered_secrets() -> frozenset[str]:
    """The secrets registered in this process."""
    return _secrets


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the given and registered secrets and every credential shape replaced."""
    # Longest first, so that a key containing another is replaced whole.
    known = sorted({*_secrets, *(s for s in secrets if s and len(s) >= 4)}, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _WHOLE:
        text = pattern.sub(REDACTED, text)
    for pattern in _PREFIXED:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_optional(text: str | None) -> str | None:
    """:func:`redact` that passes ``None`` through."""
    return None if text is None else redact(text)


def redact_value(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """``value`` with every string inside it (lists, tuples, dicts, keys too) redacted.

    ``secrets`` are redacted too, as in :func:`redact`.
    """
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {redact_value(k, secrets): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v, secrets) for v in value)
    return value


def redact_exception(
    exc: BaseException, secrets: Iterable[str | None] = (), _depth: int = 0
) -> BaseException:
    """``exc``, or a copy of it whose arguments and string attributes are redacted.

    ``secrets`` are redacted too, as in :func:`redact` (a task passes the customer text it
    was given). Its cause and context are redacted the same way (a chain of ten at most).
    The original is left as it is (the code that raised it may still hold it); when nothing
    in it needs redacting it is returned itself.
    """
    secrets = tuple(secrets)
    args = redact_value(exc.args, secrets)
    attrs = {
        name: redact(value, secrets)
        for name, value in vars(exc).items()
        if isinstance(value, str) and redact(value, secrets) != value
    }
    cause, context = exc.__cause__, exc.__context__
    if _depth < 10:
        cause = redact_exception(cause, secrets, _depth + 1) if cause is not None else None
        context = redact_exception(context, secrets, _depth + 1) if context is not None else None
    if args == exc.args and not attrs and cause is exc.__cause__ and context is exc.__context__:
        return exc
    clean = _copy(exc)
    clean.args = args
    for name, value in attrs.items():
        setattr(clean, name, value)
    clean.__cause__ = cause
    clean.__context__ = context
    clean.__suppress_context__ = exc.__suppress_context__
    return clean


def _copy(exc: BaseException) -> BaseException:
    cls = type(exc)
    try:
        clean = cls.__new__(cls)
        clean.__dict__.update(vars(exc))
    except TypeError:
        clean = Exception(*exc.args)
    clean.__traceback__ = exc.__traceback__
    return clean
