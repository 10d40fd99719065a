"""``mycpaas console`` (the operator console's server) and ``mycpaas operators`` (who may log
in to it)."""

import click
import uvicorn

from dispatcher.cli.secret_key import require_secret_key
from dispatcher.console.auth import ROLES, create_operator
from schemas.db import session_scope
from workers import serving


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8200, show_default=True)
def console(host: str, port: int) -> None:
    """Serve the operator console (its own process: keep it behind your own network rule)."""
    require_secret_key()
    # Imported here: every mycpaas command loads this module, and only this one needs the
    # console's pages (FastAPI, Jinja2 and the templates).
    from dispatcher.console.app import create_console

    config = uvicorn.Config(
        create_console(), host=host, port=port, log_level="warning", access_log=False
    )
    serving.serve(config)


@click.group()
def operators() -> None:
    """Who may log in to the console."""


@operators.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
def operators_create(name: str, role: str) -> None:
    """Create an operator; the generated password is printed once, and stored only hashed."""
    with session_scope() as session:
        try:
            password = create_operator(session, name, role)
        except Exception as exc:
            raise click.ClickException(f"cannot create {name!r}: {type(exc).__name__}") from exc
    click.echo(f"operator {name} ({role}), password: {password}")
