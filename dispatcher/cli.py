"""The ``mycpaas`` command."""

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from dispatcher.accounts import add_number, create_account
from dispatcher.bench import Options, run_bench, spawned_platform
from dispatcher.dev import run_dev
from dispatcher.errors import ApiError
from dispatcher.publish import wake
from dispatcher.queues import show as show_queues
from dispatcher.server import serve as run_server
from schemas.credentials import webhook_secret
from schemas.db import session_scope
from schemas.migrate import upgrade
from schemas.settings import get_settings
from workers import callbacks
from workers.app import QUEUES
from workers.logs import configure_logging
from workers.runner import run_beat, run_worker
from workers.simulator import SimulatorConfig, SmppListener, run_simulator
from workers.smsc import SmscConfig


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
    click.echo(f"{row.phone_number} belongs to {row.account_sid}")


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
    run_server(host, port, workers)


@main.command()
@click.option("-Q", "--queues", required=True, help=f"Comma-separated: {', '.join(QUEUES)}.")
@click.option("--pool", type=click.Choice(["threads", "prefork", "solo"]), default=None)
@click.option("-c", "--concurrency", type=int, default=None, help="Threads or processes.")
@click.option("-n", "--hostname", default=None, help="Celery node name (default: queue-pid@host).")
def worker(queues: str, pool: str | None, concurrency: int | None, hostname: str | None) -> None:
    """Run a pipeline worker for one or more queues."""
    names = [name.strip() for name in queues.split(",") if name.strip()]
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
def bench(
    url: str, count: int, concurrency: int, rate: float | None, timeout_s: float, spawn: bool,
    latency_ms: float, carriers: int, carrier: str, carrier_threads: int | None, backlog: bool,
) -> None:  # fmt: skip
    """Drive messages through the API; report throughput and latency to sent and delivered."""
    options = Options(count, concurrency, rate, timeout_s)
    if not spawn:
        run_bench(url, options)
        return
    port = int(url.rsplit(":", 1)[1])
    with spawned_platform(port, port + 100, latency_ms, carriers, carrier, backlog,
                          carrier_threads) as spawned:  # fmt: skip
        run_bench(spawned.api, options, spawned.start_carriers)


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
