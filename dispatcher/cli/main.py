"""The ``mycpaas`` command: the platform's processes and its maintenance; the commands on
accounts, the benchmark and the carrier simulator are in the modules beside this one."""

from datetime import UTC, datetime
from pathlib import Path

import click

from dispatcher.api.server import serve as run_server
from dispatcher.cli import (
    accounts,
    bench,
    carriers,
    console,
    optouts,
    retention,
    secret_key,
    simulator,
)
from dispatcher.cli.dev import run_dev
from dispatcher.cli.queues import show as show_queues
from dispatcher.cli.secret_key import require_secret_key
from dispatcher.intake.publish import wake
from schemas.db import session_scope
from schemas.migrate import upgrade
from schemas.settings import get_settings
from workers.app import QUEUES
from workers.logs import configure_logging
from workers.runner import run_beat, run_worker
from workers.stages import callbacks


@click.group()
def main() -> None:
    """mycpaas dispatch: a self-hosted SMS/MMS platform."""
    configure_logging()


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema (and record the secret key's fingerprint)."""
    upgrade()
    require_secret_key()
    click.echo("database is at the latest schema")


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
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path(".mycpaas"), show_default=True
)
def dev(port: int, data_dir: Path) -> None:
    """Run the whole platform locally on an embedded store; no servers needed."""
    run_dev(data_dir, port)


main.add_command(secret_key.secret_key)
main.add_command(accounts.accounts)
main.add_command(accounts.numbers)
main.add_command(accounts.services)
main.add_command(optouts.optouts)
main.add_command(carriers.carriers)
main.add_command(carriers.routes)
main.add_command(retention.retention)
main.add_command(console.console)
main.add_command(console.operators)
main.add_command(bench.bench)
main.add_command(simulator.carrier_sim)
