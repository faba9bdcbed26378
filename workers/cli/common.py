"""What the ``hearth`` subcommands share: the error exit, the log level option, settings."""

from __future__ import annotations

import typer

from workers.settings import Settings

LOGLEVEL = typer.Option("INFO", "--loglevel", "-l", envvar="HEARTH_LOG_LEVEL", help="log level")
"""The ``--loglevel`` option of every command that runs a worker or a beat."""


def fail(message: str, exc: BaseException | None = None) -> None:
    """Print ``message`` and the cause chain of ``exc`` to stderr, then exit with code 1.

    Raises:
        typer.Exit: always.
    """
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    cause = exc.__cause__ if exc is not None else None
    while cause is not None:
        first = (str(cause).strip().splitlines() or [""])[0]
        typer.secho(f"  caused by: {type(cause).__name__}: {first}", err=True)
        cause = cause.__cause__
    raise typer.Exit(code=1)


def resolved(settings: Settings) -> Settings:
    """``settings`` with an absolute data directory.

    The embedded servers derive their socket and runtime paths from it.
    """
    return settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
