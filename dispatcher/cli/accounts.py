"""``mycpaas accounts``, ``numbers`` and ``services``: an account, the numbers it sends from,
and the Messaging Services that choose among them."""

import json

import click

from dispatcher.cli.secret_key import require_secret_key
from dispatcher.errors import ApiError
from dispatcher.intake.accounts import add_number, create_account
from dispatcher.intake.params import is_http_url
from dispatcher.intake.services import add_to_pool, create_service, find_number, list_services, pool
from schemas.credentials import webhook_secret
from schemas.db import session_scope
from schemas.models import Account, MessagingService, PhoneNumber
from schemas.phone import to_e164

MAX_LISTED = 1000  # services shown by ``services list``


@click.group()
def accounts() -> None:
    """Manage accounts."""


@accounts.command("create")
@click.option("--name", default="", help="A friendly name for the account.")
@click.option("--json", "as_json", is_flag=True, help="Print the sid and token as JSON.")
def accounts_create(name: str, as_json: bool) -> None:
    """Create an account; its auth token is printed once and never again."""
    require_secret_key()
    with session_scope() as session:
        account, token = create_account(session, name)
    secret = webhook_secret(account.sid, account.token_salt)
    if as_json:
        click.echo(json.dumps({"sid": account.sid, "auth_token": token, "name": name,
                               "webhook_secret": secret}))  # fmt: skip
    else:
        click.echo(
            f"AccountSid:    {account.sid}\nAuthToken:     {token}\n"
            f"WebhookSecret: {secret}  (verifies the webhook-signature header of callbacks)"
        )


@click.group()
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
    click.echo(f"{row.sid}  {row.phone_number} belongs to {row.account_sid}")


@numbers.command("update")
@click.option("--sms-url", default=None, help="Where messages it receives are posted; '' clears.")
@click.option("--sms-fallback-url", default=None, help="Called when the SmsUrl fails.")
@click.argument("number")
def numbers_update(number: str, sms_url: str | None, sms_fallback_url: str | None) -> None:
    """Set where messages NUMBER (E.164) receives go."""
    changes = {"sms_url": sms_url, "sms_fallback_url": sms_fallback_url}
    for name, url in changes.items():
        if url and not is_http_url(url):
            raise click.ClickException(f"--{name.replace('_', '-')} must be an http(s) URL")
    with session_scope() as session:
        row = session.get(PhoneNumber, to_e164(number) or number)
        if row is None:
            raise click.ClickException(f"{number} is no number of any account")
        for name, url in changes.items():
            if url is not None:
                setattr(row, name, url or None)
        session.add(row)
        session.commit()
        click.echo(f"{row.phone_number}: messages it receives go to {row.sms_url or 'nowhere'}")


@click.group()
def services() -> None:
    """Manage Messaging Services: pools of numbers that choose each message's sender."""


@services.command("create")
@click.option("--account", "account_sid", required=True, help="The owning account (AC…).")
@click.option("--name", required=True, help="A friendly name (up to 64 characters).")
@click.option("--status-callback", default=None, help="For messages that give none.")
@click.option("--sticky-sender/--no-sticky-sender", default=True, show_default=True,
              help="One destination always hears from the same number.")  # fmt: skip
@click.option("--validity-period", type=int, default=None, help="Seconds (default 36000).")
def services_create(
    account_sid: str, name: str, status_callback: str | None, sticky_sender: bool,
    validity_period: int | None,
) -> None:  # fmt: skip
    """Create a Messaging Service for an account; prints its sid."""
    params = {"FriendlyName": [name], "StickySender": [str(sticky_sender).lower()]}
    if status_callback is not None:
        params["StatusCallback"] = [status_callback]
    if validity_period is not None:
        params["ValidityPeriod"] = [str(validity_period)]
    try:
        with session_scope() as session:
            if session.get(Account, account_sid) is None:
                raise ApiError(f"No account {account_sid}", code=20404, http_status=404)
            service = create_service(session, account_sid, params)
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{service.sid}  {service.friendly_name} belongs to {service.account_sid}")


@services.command("list")
@click.option("--account", "account_sid", required=True, help="The owning account (AC…).")
def services_list(account_sid: str) -> None:
    """An account's services, each with the numbers of its pool."""
    with session_scope() as session:
        found = list_services(session, account_sid, 0, MAX_LISTED)
        for service in found:
            numbers = [number.phone_number for _, number in pool(session, service.sid)]
            sticky = "sticky" if service.sticky_sender else "spread"
            click.echo(f"{service.sid}  {service.friendly_name}  ({sticky})  "
                       f"{', '.join(numbers) or 'no numbers'}")  # fmt: skip
    if not found:
        click.echo(f"{account_sid} has no Messaging Services")


@services.command("add-number")
@click.option("--service", "service_sid", required=True, help="The service (MG…).")
@click.argument("number")
def services_add_number(service_sid: str, number: str) -> None:
    """Put NUMBER (E.164, or its PN… sid) of the service's account in the service's pool."""
    try:
        with session_scope() as session:
            service = session.get(MessagingService, service_sid)
            if service is None:
                raise ApiError(f"No Messaging Service {service_sid}", code=20404, http_status=404)
            row = find_number(session, service.account_sid, to_e164(number) or number)
            add_to_pool(session, service, row)
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{row.sid}  {row.phone_number} sends for {service.sid}")
