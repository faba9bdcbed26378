"""The ``hearth`` command line: thin subcommands over the library and the workers."""

from __future__ import annotations

import importlib.metadata

import typer

from workers.cli import db, run

app = typer.Typer(
    name="hearth",
    help="hearth: production stores, AI providers and workers for conversational agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
run.register(app)


@app.command()
def version() -> None:
    """Print hearth's version."""
    typer.echo(f"hearth {importlib.metadata.version('hearth')}")


@app.command()
def demo() -> None:
    """Run a short scripted story on the in-memory stores and print what happens."""
    from workers.cli.demo import run_demo

    run_demo()


def main() -> None:
    """Entry point of the ``hearth`` console script."""
    app()
