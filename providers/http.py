"""The HTTP plumbing the providers share."""

from __future__ import annotations

import ssl
import threading

import httpx2

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every provider in the process.

    Building one loads the CA bundle (about 25 ms of CPU); the SDKs would do that for every
    client. A context is safe to share between clients and threads.
    """
    global _context
    with _lock:
        if _context is None:
            _context = httpx2.create_ssl_context()
        return _context
