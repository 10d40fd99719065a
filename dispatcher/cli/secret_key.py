"""``mycpaas secret-key``, and the check every command that issues or reads tokens runs first."""

import json

import click
from sqlmodel import select

from schemas.credentials import (
    SecretKeyError,
    adopt_secret_key,
    auth_token,
    check_secret_key,
    webhook_secret,
)
from schemas.db import session_scope
from schemas.models import Account


def require_secret_key() -> None:
    """Refuse to run with a key the database's tokens were not issued under (one line)."""
    try:
        with session_scope() as session:
            check_secret_key(session)
    except SecretKeyError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("secret-key")
def secret_key() -> None:
    """The key every auth token and webhook secret is derived from."""


@secret_key.command("rotate")
@click.option("--yes", is_flag=True, required=True, help="Every token and secret changes.")
def secret_key_rotate(yes: bool) -> None:
    """Make this process's MYCPAAS_SECRET_KEY the database's; prints each account's new auth
    token and webhook secret (one JSON line per account). Stop every process first, then
    start them all with the new key."""
    with session_scope() as session:
        adopt_secret_key(session)
        for account in session.exec(select(Account).order_by(Account.sid)):
            sid, salt = account.sid, account.token_salt
            line = {"sid": sid, "name": account.friendly_name, "auth_token": auth_token(sid, salt),
                    "webhook_secret": webhook_secret(sid, salt)}  # fmt: skip
            click.echo(json.dumps(line))
