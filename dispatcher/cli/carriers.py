"""``mycpaas carriers list`` and ``mycpaas routes test``: the connections the carrier workers
use (the carriers file's, or the single-carrier settings'), whether each is up, and which route
and connection a message would take."""

import click
from sqlalchemy.exc import SQLAlchemyError

from schemas.db import session_scope
from schemas.phone import to_e164
from schemas.settings import get_settings
from workers.carriers import connectivity
from workers.carriers.factory import plan_of
from workers.carriers.routing import Message, Router


@click.group()
def carriers() -> None:
    """The carrier connections (MYCPAAS_CARRIERS_FILE, or MYCPAAS_CARRIER)."""


@carriers.command("list")
def carriers_list() -> None:
    """Each connection: its driver, what it carries, and whether the workers have it up."""
    plan = plan_of(get_settings())
    try:
        with session_scope() as session:
            views: list[connectivity.LinkState] | None = connectivity.current(session)
    except SQLAlchemyError as exc:  # what the file says is still worth showing
        click.echo(f"(the store cannot say which are up: {type(exc).__name__})", err=True)
        views = None
    for name, connection in plan.connections.items():
        mine = [view for view in views or [] if view.connection == name]
        if not connection.enabled:
            state = "disabled"
        elif views is None:
            state = "unknown"
        elif not mine:
            state = "no worker reports it"
        elif any(view.up for view in mine):
            state = "up"
        else:
            state = connectivity.describe(min(mine, key=lambda view: view.since))
        where = connection.settings.get("host") or connection.settings.get("url") or "settings"
        carries = ",".join(sorted(connection.carries))
        click.echo(f"{name:16} {connection.driver:9} {carries:8} {where:32} {state}")


@click.group()
def routes() -> None:
    """The routes between the carrier connections."""


@routes.command("test")
@click.option("--to", "to", required=True, help="The recipient, E.164.")
@click.option("--from", "sender", default="", help="The sender (number or alphanumeric).")
@click.option("--media", is_flag=True, help="An MMS.")
@click.option("--account", default="", help="The sending account (AC…).")
@click.option("--service", default=None, help="The Messaging Service (MG…).")
def routes_test(to: str, sender: str, media: bool, account: str, service: str | None) -> None:
    """Which route and connection a message would take (health not considered)."""
    number = to_e164(to)
    if number is None:
        raise click.ClickException(f"{to!r} is not a phone number in E.164 form")
    plan = plan_of(get_settings())
    choice = Router(plan.connections, plan.routes).choose(
        Message(number, to_e164(sender) or sender, media, account, service)
    )
    if choice is None:
        raise click.ClickException(f"no route carries an {'MMS' if media else 'SMS'} to "
                                   f"{number}: it would fail with 21612")  # fmt: skip
    click.echo(f"route {choice.route!r} → connection {choice.connection!r}")
