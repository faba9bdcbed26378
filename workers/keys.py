"""Every Redis key the workers own, in one place.

The session store owns its own layout (``stores/sessions``); these keys sit beside it under
``hearth:w:`` so that the two never collide. No command, script or transaction touches two of
them at once (``workers.jobs`` and ``workers.locks`` use single-key commands only), so they
need no hash tag on a Redis Cluster.
"""

from __future__ import annotations

PREFIX = "hearth:w:"

LOCK_PREFIX = f"{PREFIX}lock:"
"""``<LOCK_PREFIX><job>``: the token of the process running that periodic job."""

JOB_LAST_PREFIX = f"{PREFIX}job:"
"""``<JOB_LAST_PREFIX><job>``: JSON of the job's last run (``hearth status``)."""

JOB_STREAM = f"{PREFIX}runs"
"""A capped stream of every run, newest last (``hearth up`` tails it)."""

JOB_STREAM_MAXLEN = 1000
"""About how many runs the stream keeps."""


def lock_key(job: str) -> str:
    """The key of a periodic job's lock."""
    return f"{LOCK_PREFIX}{job}"


def job_key(job: str) -> str:
    """The key of a periodic job's last run."""
    return f"{JOB_LAST_PREFIX}{job}"
