"""``hearth db``: apply, roll back and inspect schema migrations.

Exit codes of ``hearth db check``: 0 at head, 1 behind (or never migrated), 2 ahead of this
code, 3 database unreachable.
"""

from __future__ import annotations

import sys

import typer

from stores.errors import StoreError
from stores.postgres.tenant_indexes import TenantIndexPolicy
from workers import migrations
from workers.cli.common import fail
from workers.runtime import database
from workers.settings import get_settings

app = typer.Typer(help="Apply, roll back and inspect schema migrations.", no_args_is_help=True)

CHECK_EXIT_CODES = {
    migrations.SchemaState.CURRENT: 0,
    migrations.SchemaState.BEHIND: 1,
    migrations.SchemaState.UNINITIALIZED: 1,
    migrations.SchemaState.AHEAD: 2,
    migrations.SchemaState.UNREACHABLE: 3,
}


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="target revision (default: head)"),
) -> None:
    """Upgrade the schema to REVISION; safe when several processes run it at once."""
    settings = get_settings()
    try:
        with database(settings) as url:
            before = migrations.current_revision(url)
            migrations.upgrade(url, revision, dimensions=settings.embedding_dimensions)
            after = migrations.current_revision(url)
    except (migrations.MigrationError, RuntimeError) as exc:
        fail(str(exc), exc)
        return
    if before == after:
        typer.echo(f"already at {after or 'base'}; nothing to do")
    else:
        typer.echo(f"upgraded {before or 'base'} -> {after}")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="target revision; 'base' removes every hearth table"),
) -> None:
    """Downgrade the schema to REVISION."""
    settings = get_settings()
    try:
        with database(settings) as url:
            before = migrations.current_revision(url)
            migrations.downgrade(url, revision)
            after = migrations.current_revision(url)
    except (migrations.MigrationError, RuntimeError) as exc:
        fail(str(exc), exc)
        return
    typer.echo(f"downgraded {before or 'base'} -> {after or 'base'}")


@app.command()
def status() -> None:
    """Show the current revision, head, and the revisions still to apply."""
    settings = get_settings()
    try:
        with database(settings) as url:
            st = migrations.status(url)
    except RuntimeError as exc:
        fail(str(exc), exc)
        return
    typer.echo(f"state:    {st.state.value}")
    typer.echo(f"current:  {st.current or '(none)'}")
    typer.echo(f"head:     {st.head}")
    typer.echo(f"pending:  {', '.join(st.pending) if st.pending else '(none)'}")
    if st.detail:
        typer.echo(f"detail:   {st.detail}")


@app.command()
def check() -> None:
    """Exit 0 only when the schema is at head (1 behind, 2 ahead, 3 unreachable)."""
    settings = get_settings()
    try:
        with database(settings) as url:
            st = migrations.status(url)
    except RuntimeError as exc:
        typer.echo(f"unreachable: {exc}", err=True)
        sys.exit(CHECK_EXIT_CODES[migrations.SchemaState.UNREACHABLE])
    message = {
        migrations.SchemaState.CURRENT: f"schema is at head ({st.head})",
        migrations.SchemaState.BEHIND: f"schema is behind: {st.current} < {st.head}; "
        "run `hearth db upgrade`",
        migrations.SchemaState.UNINITIALIZED: "schema was never migrated; run `hearth db upgrade`",
        migrations.SchemaState.AHEAD: f"schema is ahead of this code: {st.detail}",
        migrations.SchemaState.UNREACHABLE: f"database unreachable: {st.detail}",
    }[st.state]
    typer.echo(message, err=st.state is not migrations.SchemaState.CURRENT)
    sys.exit(CHECK_EXIT_CODES[st.state])


@app.command()
def history() -> None:
    """List every revision, oldest first."""
    for rev, down, doc in migrations.history():
        typer.echo(f"{down or 'base':>6} -> {rev}  {doc}")


@app.command("tenant-indexes")
def tenant_indexes(
    apply: bool = typer.Option(False, "--apply", help="make the changes (default: only show)"),
    min_rows: int | None = typer.Option(
        None,
        help="embedded rows a tenant needs for an index [default: HEARTH_TENANT_INDEX_MIN_ROWS]",
    ),
    min_share: float | None = typer.Option(
        None,
        help="share of a table's embedded rows a tenant needs "
        "[default: HEARTH_TENANT_INDEX_MIN_SHARE]",
    ),
    keep_share: float | None = typer.Option(
        None,
        help="share below which a tenant's index is dropped "
        "[default: HEARTH_TENANT_INDEX_KEEP_SHARE]",
    ),
) -> None:
    """Show (or with --apply, make) the vector indexes of tenants holding a large share.

    The periodic job ``tenant-vector-indexes`` (Celery task
    ``hearth.maintenance.index_large_tenants``) applies the same plan every hour.
    """
    from stores.postgres.engine import create_engine
    from stores.postgres.tenant_indexes import apply_changes, plan_changes

    settings = get_settings()
    try:
        policy = TenantIndexPolicy(
            min_rows=settings.tenant_index_min_rows if min_rows is None else min_rows,
            min_share=settings.tenant_index_min_share if min_share is None else min_share,
            keep_share=settings.tenant_index_keep_share if keep_share is None else keep_share,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        with database(settings) as url:
            engine = create_engine(url)
            try:
                if apply:
                    changes = apply_changes(
                        engine, policy, build_memory=settings.tenant_index_build_memory
                    )
                else:
                    with engine.connect() as conn:
                        changes = plan_changes(conn, policy)
            finally:
                engine.dispose()
    except (RuntimeError, StoreError) as exc:
        fail(str(exc), exc)
        return
    if changes is None:
        typer.echo("another run is changing the tenant indexes; nothing done")
        return
    verb = (
        {"create": "created", "drop": "dropped"} if apply else {"create": "create", "drop": "drop"}
    )
    for change in changes:
        typer.echo(f"{verb[change.action]:>7} {change.index}  ({change.reason})")
    if not changes:
        typer.echo("every large tenant has its index; nothing to change")
