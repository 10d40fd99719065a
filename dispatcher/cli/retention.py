"""``mycpaas retention``: a pass of retention now (or what it would remove), and an account's
own retention (``mycpaas accounts update --retention-days``)."""

import click

from dispatcher.cli.accounts import accounts
from schemas.db import session_scope
from schemas.models import Account
from schemas.settings import get_settings
from workers import retention as store_retention


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what the pass would remove; remove nothing.")
def retention(dry_run: bool) -> None:
    """Remove final messages past their account's retention (the maintenance stage does this
    every hour by itself)."""
    done = store_retention.run(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for account, count in sorted(done.removed.items()):
        if count:
            click.echo(f"{account}  {verb} {count:,} messages")
    total, days = sum(done.removed.values()), get_settings().retention_days
    click.echo(f"{verb} {total:,} messages in {done.seconds:.1f} s "
               f"(retention {days} days unless an account sets its own)")  # fmt: skip


@accounts.command("update")
@click.argument("account_sid")
@click.option("--retention-days", type=click.IntRange(min=1), default=None,
              help="Keep its final messages this many days.")  # fmt: skip
@click.option("--default-retention", is_flag=True, help="Back to MYCPAAS_RETENTION_DAYS.")
def accounts_update(account_sid: str, retention_days: int | None, default_retention: bool) -> None:
    """Change an account's settings."""
    with session_scope() as session:
        account = session.get(Account, account_sid)
        if account is None:
            raise click.ClickException(f"{account_sid} is no account")
        if default_retention:
            account.retention_days = None
        elif retention_days is not None:
            account.retention_days = retention_days
        session.add(account)
        session.commit()
        days = account.retention_days
    shown = f"{days} days" if days else f"{get_settings().retention_days} days (the default)"
    click.echo(f"{account_sid}: retention {shown}")
