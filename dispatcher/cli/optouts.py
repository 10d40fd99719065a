"""``mycpaas optouts``: the handsets that texted STOP, a list brought from another provider, and
the automatic replies to STOP, START and HELP."""

from pathlib import Path

import click
from sqlalchemy import select

from schemas.db import session_scope
from schemas.ids import is_sid
from schemas.inbound import keyword_replies_table, opt_outs_table
from schemas.models import PhoneNumber, service_numbers_table
from schemas.phone import to_e164
from schemas.types import utcnow
from workers.segmentation import MAX_BODY_CHARS
from workers.twoway.optouts import opt_in, opt_out
from workers.twoway.replies import DEFAULT_TEXTS


@click.group()
def optouts() -> None:
    """Recipients nothing is sent to from a number (or the Messaging Service it is in)."""


def _scope(number: str) -> tuple[str, str]:
    """(account, scope) of one of the platform's numbers: its service when it is in one."""
    with session_scope() as session:
        row = session.get(PhoneNumber, to_e164(number) or number)
        if row is None:
            raise click.ClickException(f"{number} is no number of any account")
        sn = service_numbers_table.c
        service = session.execute(
            select(sn.service_sid).where(sn.phone_number == row.phone_number)
        ).scalar()
    return row.account_sid, service or row.phone_number


def _recipient(raw: str) -> str:
    number = to_e164(raw.strip())
    if number is None:
        raise click.ClickException(f"{raw!r} is not a phone number in E.164 form")
    return number


@optouts.command("add")
@click.option("--from", "sender", required=True, help="Our number they opted out of.")
@click.option("--file", "listing", type=click.Path(exists=True, path_type=Path),
              help="One recipient per line (an export from another provider).")  # fmt: skip
@click.argument("recipients", nargs=-1)
def optouts_add(sender: str, listing: Path | None, recipients: tuple[str, ...]) -> None:
    """Opt RECIPIENTS (and those of --file) out of messages from --from."""
    account, scope = _scope(sender)
    lines = listing.read_text(encoding="utf-8").splitlines() if listing else []
    numbers = [(_recipient(raw), "operator") for raw in recipients if raw.strip()]
    numbers += [(_recipient(raw), "import") for raw in lines if raw.strip()]
    with session_scope() as session:
        for number, source in numbers:
            opt_out(session, account, scope, number, source, utcnow())
        session.commit()
    click.echo(f"{len(numbers)} recipients opted out of {scope}")


@optouts.command("remove")
@click.option("--from", "sender", required=True, help="Our number they opted out of.")
@click.argument("recipients", nargs=-1, required=True)
def optouts_remove(sender: str, recipients: tuple[str, ...]) -> None:
    """Let RECIPIENTS hear from --from again."""
    _, scope = _scope(sender)
    with session_scope() as session:
        for raw in recipients:
            opt_in(session, scope, _recipient(raw))
        session.commit()
    click.echo(f"{len(recipients)} recipients opted back in to {scope}")


@optouts.command("list")
@click.option("--from", "sender", required=True, help="Our number (or its service's scope).")
def optouts_list(sender: str) -> None:
    """The recipients opted out of --from, oldest first."""
    _, scope = _scope(sender)
    o = opt_outs_table.c
    with session_scope() as session:
        rows = session.execute(
            select(o.phone_number, o.source, o.date_created)
            .where(o.scope == scope).order_by(o.date_created)
        ).all()  # fmt: skip
    for number, source, when in rows:
        click.echo(f"{number}  {source:8}  {when.isoformat()}")


@optouts.command("reply")
@click.option("--scope", required=True, help="An account (AC…) or a Messaging Service (MG…).")
@click.option("--keyword", type=click.Choice(sorted(DEFAULT_TEXTS)), required=True)
@click.option("--text", default=None, help="The reply; '' sends none. Leave out to reset.")
def optouts_reply(scope: str, keyword: str, text: str | None) -> None:
    """Set the automatic reply to KEYWORD (a service's comes before its account's)."""
    if not (is_sid(scope, "AC") or is_sid(scope, "MG")):
        raise click.ClickException(f"{scope!r} is neither an account (AC…) nor a service (MG…)")
    if text is not None and len(text) > MAX_BODY_CHARS:
        raise click.ClickException(f"the reply is longer than {MAX_BODY_CHARS} characters")
    k = keyword_replies_table.c
    with session_scope() as session:
        session.execute(
            keyword_replies_table.delete().where(k.scope == scope, k.keyword == keyword)
        )
        if text is not None:
            session.execute(keyword_replies_table.insert().values(
                scope=scope, keyword=keyword, text=text, date_updated=utcnow()))  # fmt: skip
        session.commit()
    shown = "Twilio's default" if text is None else repr(text) if text else "no reply"
    click.echo(f"{keyword} from {scope}: {shown}")
