"""The ``mycpaas`` command."""

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlmodel import select

from dispatcher.api.server import serve as run_server
from dispatcher.bench.load import Options
from dispatcher.bench.platform import callback_sink, scratch_store, spawned_platform
from dispatcher.bench.run import run_bench
from dispatcher.bench.stored import fill_store
from dispatcher.bench.writes import report_writes, row_versions
from dispatcher.cli.dev import run_dev
from dispatcher.cli.queues import show as show_queues
from dispatcher.errors import ApiError
from dispatcher.intake.accounts import add_number, create_account
from dispatcher.intake.phone import to_e164
from dispatcher.intake.publish import wake
from dispatcher.intake.services import add_to_pool, create_service, find_number, list_services, pool
from schemas.credentials import (
    SecretKeyError,
    adopt_secret_key,
    auth_token,
    check_secret_key,
    webhook_secret,
)
from schemas.db import session_scope
from schemas.migrate import upgrade
from schemas.models import Account, MessagingService
from schemas.settings import get_settings
from workers.app import QUEUES
from workers.logs import configure_logging
from workers.runner import run_beat, run_worker
from workers.simulator.server import SimulatorConfig, SmppListener, run_simulator
from workers.simulator.smsc import SmscConfig
from workers.stages import callbacks

MAX_LISTED = 1000  # services shown by ``services list``


@click.group()
def main() -> None:
    """mycpaas dispatch: a self-hosted SMS/MMS platform."""
    configure_logging()


def require_secret_key() -> None:
    """Refuse to run with a key the database's tokens were not issued under (one line)."""
    try:
        with session_scope() as session:
            check_secret_key(session)
    except SecretKeyError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema (and record the secret key's fingerprint)."""
    upgrade()
    require_secret_key()
    click.echo("database is at the latest schema")


@main.group("secret-key")
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


@main.group()
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
    click.echo(f"{row.sid}  {row.phone_number} belongs to {row.account_sid}")


@main.group()
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


@main.group("callbacks")
def callbacks_group() -> None:
    """Status callbacks."""


@callbacks_group.command("replay")
@click.option("--since", required=True, type=click.DateTime(), help="Created at or after (UTC).")
@click.option(
    "--state", "states", multiple=True, default=("dead",), show_default=True,
    type=click.Choice(list(callbacks.SETTLED)), help="Which settled callbacks to deliver again.",
)  # fmt: skip
def callbacks_replay(since: datetime, states: tuple[str, ...]) -> None:
    """Deliver callbacks again after an outage (same webhook-ids, in order per message)."""
    with session_scope() as session:
        count = callbacks.replay(session, since=since.replace(tzinfo=UTC), states=states)
    wake("callbacks")
    click.echo(f"{count} callbacks queued for delivery again")


@main.command()
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", "interval_s", default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")  # fmt: skip
def queues(watch: bool, interval_s: float) -> None:
    """Depth, oldest age, in-flight work and recent rate of every stage's queue."""
    show_queues(watch, interval_s)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Server processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API."""
    require_secret_key()
    run_server(host, port, workers)


@main.command()
@click.option("-Q", "--queues", required=True, help=f"Comma-separated: {', '.join(QUEUES)}.")
@click.option("--pool", type=click.Choice(["threads", "prefork", "solo"]), default=None)
@click.option("-c", "--concurrency", type=int, default=None, help="Threads or processes.")
@click.option("-n", "--hostname", default=None, help="Celery node name (default: queue-pid@host).")
def worker(queues: str, pool: str | None, concurrency: int | None, hostname: str | None) -> None:
    """Run a pipeline worker for one or more queues."""
    names = [name.strip() for name in queues.split(",") if name.strip()]
    require_secret_key()
    try:
        run_worker(names, pool, concurrency, get_settings().log_level, hostname)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--schedule-file", type=click.Path(path_type=Path), default=Path("celerybeat-schedule")
)
def beat(schedule_file: Path) -> None:
    """Run the scheduler that starts the sweeper."""
    run_beat(schedule_file, get_settings().log_level)


@main.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The API.")
@click.option("-n", "--count", default=1000, show_default=True, help="Messages to send.")
@click.option("-c", "--concurrency", default=32, show_default=True, help="Concurrent clients.")
@click.option("--rate", type=float, default=None, help="Pace creates to this many per second.")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True, help="Seconds to wait.")
@click.option("--spawn", is_flag=True, help="Start API, simulator, workers and beat for the run.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Simulator latency (--spawn).")
@click.option("--carriers", default=1, show_default=True, help="Carrier workers (--spawn).")
@click.option(
    "--callbacks", "sink_port", type=int, default=None, metavar="PORT",
    help="A StatusCallback on every message, to a local sink on this port; reports arrivals.",
)  # fmt: skip
@click.option("--bulk", "bulk_size", default=0, show_default=True,
              help="Messages per bulk create (…/Messages/Bulk); 0: one create each.")  # fmt: skip
@click.option("--segments", default=1, show_default=True,
              help="GSM-7 parts per message (a multipart body from 2).")  # fmt: skip
@click.option(
    "--carrier",
    type=click.Choice(["simulator", "smpp"]),
    default="simulator",
    show_default=True,
    help="How the workers reach the simulator (--spawn).",
)
@click.option("--carrier-threads", type=int, default=None, help="Threads per carrier worker.")
@click.option(
    "--backlog",
    is_flag=True,
    help="Start the carrier workers once every message is accepted and segmented (--spawn): "
    "the carrier figure then measures the carrier stage alone.",
)
@click.option(
    "--stored",
    default=0,
    show_default=True,
    help="Settled messages the scratch store holds before the run (--spawn).",
)
def bench(
    url: str, count: int, concurrency: int, rate: float | None, timeout_s: float, spawn: bool,
    latency_ms: float, carriers: int, sink_port: int | None, bulk_size: int, segments: int,
    carrier: str, carrier_threads: int | None, backlog: bool, stored: int,
) -> None:  # fmt: skip
    """Drive messages through the API; report throughput and latency to sent and delivered."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(callback_sink(sink_port)) if sink_port else None
        options = Options(count, concurrency, rate, timeout_s, sink, bulk_size, segments)
        if not spawn:
            if stored:
                raise click.UsageError("--stored fills the scratch store of --spawn; add --spawn")
            run_bench(url, options)
            return
        stack.enter_context(scratch_store())
        if stored:
            fill_store(stored)
        port = int(url.rsplit(":", 1)[1])
        before = row_versions()
        with spawned_platform(port, port + 100, latency_ms, carriers, carrier, backlog,
                              carrier_threads) as spawned:  # fmt: skip
            run_bench(spawned.api, options, spawned.sessions, spawned.start_carriers)
        report_writes(before, count)


@main.command("carrier-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True)
@click.option("--latency-ms", default=0.0, show_default=True, help="Delay of each submit answer.")
@click.option("--receipt-delay-ms", default=50.0, show_default=True, help="Acceptance to receipt.")
@click.option("--smpp-port", type=int, default=None, help="Also serve SMPP 3.4 on this port.")
@click.option(
    "--smpp-throttle-tps",
    type=float,
    default=None,
    help="SMPP submits per second above which ESME_RTHROTTLED is answered.",
)
@click.option("--smpp-system-id", default="", help="The only system_id that binds (any if empty).")
@click.option("--smpp-password", default="", help="The only password that binds (any if empty).")
@click.option(
    "--smpp-enquire-link-s",
    default=30.0,
    show_default=True,
    help="Idle seconds before the SMSC sends its own enquire_link.",
)
@click.option(
    "--smpp-receipt-resend-s",
    default=5.0,
    show_default=True,
    help="A receipt whose deliver_sm_resp does not come is sent again after this.",
)
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep SMPP submits, acceptances and receipts here, across restarts.",
)
def carrier_sim(
    host: str, port: int, latency_ms: float, receipt_delay_ms: float, smpp_port: int | None,
    smpp_throttle_tps: float | None, smpp_system_id: str, smpp_password: str,
    smpp_enquire_link_s: float, smpp_receipt_resend_s: float, journal: Path | None,
) -> None:  # fmt: skip
    """Run the carrier simulator; receipts go to MYCPAAS_PUBLIC_BASE_URL/carrier/receipts (HTTP)
    or as deliver_sm on the SMPP binds."""
    settings = get_settings()
    config = SimulatorConfig(
        receipts_url=f"{settings.public_base_url.rstrip('/')}/carrier/receipts",
        receipts_token=settings.receipts_token,
        latency_ms=latency_ms,
        receipt_delay_ms=receipt_delay_ms,
    )
    smpp = None
    if smpp_port is not None:
        smsc = SmscConfig(
            latency_ms=latency_ms, receipt_delay_ms=receipt_delay_ms,
            throttle_tps=smpp_throttle_tps, system_id=smpp_system_id, password=smpp_password,
            enquire_link_s=smpp_enquire_link_s, receipt_resend_s=smpp_receipt_resend_s,
            journal=journal,
        )  # fmt: skip
        smpp = SmppListener(host, smpp_port, smsc)
    run_simulator(config, host, port, smpp)


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
