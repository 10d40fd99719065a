"""The ``mycpaas`` command."""

import json
from pathlib import Path

import click
import uvicorn

from dispatcher.accounts import add_number, create_account
from dispatcher.dev import run_dev
from dispatcher.errors import ApiError
from schemas.db import session_scope
from schemas.migrate import upgrade
from workers.logs import configure_logging


@click.group()
def main() -> None:
    """mycpaas dispatch: a self-hosted SMS/MMS platform."""
    configure_logging()


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    upgrade()
    click.echo("database is at the latest schema")


@main.group()
def accounts() -> None:
    """Manage accounts."""


@accounts.command("create")
@click.option("--name", default="", help="A friendly name for the account.")
@click.option("--json", "as_json", is_flag=True, help="Print the sid and token as JSON.")
def accounts_create(name: str, as_json: bool) -> None:
    """Create an account; its auth token is printed once and never again."""
    with session_scope() as session:
        account, token = create_account(session, name)
    if as_json:
        click.echo(json.dumps({"sid": account.sid, "auth_token": token, "name": name}))
    else:
        click.echo(f"AccountSid: {account.sid}\nAuthToken:  {token}  (shown once; keep it safe)")


@main.group()
def numbers() -> None:
    """Manage the phone numbers accounts send from."""


@numbers.command("add")
@click.option("--account", "account_sid", required=True, help="The owning account (AC…).")
@click.option("--sps", type=float, default=None, help="Segments per second for this sender.")
@click.argument("number")
def numbers_add(account_sid: str, number: str, sps: float | None) -> None:
    """Give NUMBER (E.164) to an account."""
    try:
        with session_scope() as session:
            row = add_number(session, account_sid, number, sps)
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{row.phone_number} belongs to {row.account_sid}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Server processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API."""
    uvicorn.run(
        "dispatcher.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
    )


@main.command()
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path(".mycpaas"), show_default=True
)
def dev(port: int, data_dir: Path) -> None:
    """Run the whole platform locally on an embedded store; no servers needed."""
    run_dev(data_dir, port)


if __name__ == "__main__":
    main()
