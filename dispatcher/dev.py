"""``mycpaas dev``: the platform in one process group on an embedded store, for a first look.

It needs no server: the record is a SQLite file and the broker is kombu's SQLAlchemy transport
on a second SQLite file (durable, no daemon, and the same kombu code path as production brokers;
slower than Redis, which does not matter for one developer). Ctrl-C stops every child.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlmodel import select

from dispatcher.accounts import add_number, rotate_token
from dispatcher.inbox import Inbox
from schemas.credentials import SecretKeyError, check_secret_key
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.migrate import upgrade
from schemas.models import Account
from schemas.settings import get_settings
from workers.app import QUEUES

DEV_ACCOUNT_NAME = "dev"
DEV_NUMBER = "+15005550006"  # Twilio's magic "valid" test number; valid for libphonenumber too
STOP_GRACE_S = 10.0  # children get this long to finish their work after Ctrl-C


def dev_environment(data_dir: Path, port: int) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "MYCPAAS_DATABASE_URL": f"sqlite:///{data_dir / 'mycpaas.db'}",
        "MYCPAAS_BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.db'}",
        "MYCPAAS_REDIS_URL": "",  # no Redis: sender throughput is not limited in dev mode
        "MYCPAAS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MYCPAAS_CARRIER": "simulator",
        "MYCPAAS_CARRIER_URL": f"http://127.0.0.1:{port + 100}",
        "MYCPAAS_API_RATE_LIMIT_PER_S": "0",
        "MYCPAAS_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,::1/128",  # local callback receivers
    }


def _dev_account() -> tuple[str, str]:
    """The dev account, with a fresh token printed each start (the old one stops working)."""
    with session_scope() as session:
        account = session.exec(
            select(Account).where(Account.friendly_name == DEV_ACCOUNT_NAME)
        ).first()
        if account is None:
            account = Account(sid=new_sid("AC"), friendly_name=DEV_ACCOUNT_NAME, token_salt="")
        token = rotate_token(account)
        session.add(account)
        session.commit()
        add_number(session, account.sid, DEV_NUMBER)
        return account.sid, token


@contextmanager
def _children(commands: list[list[str]], env: dict[str, str]) -> Iterator[list[subprocess.Popen]]:
    procs = [subprocess.Popen(command, env=env) for command in commands]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _banner(base: str, sid: str, token: str, inbox: str, env: dict[str, str]) -> str:
    to = "+14155552671"
    return "\n".join(
        [
            f"\nmycpaas dev is up: API {base}  (docs {base}/docs, metrics {base}/metrics)",
            f"  AccountSid {sid}",
            f"  AuthToken  {token}",
            f"  From       {DEV_NUMBER}",
            f"  Inbox      {inbox}  (status callbacks sent here are printed below)",
            "",
            f"  curl -u {sid}:{token} {base}/v1/Accounts/{sid}/Messages \\",
            f"    --data-urlencode To={to} --data-urlencode From={DEV_NUMBER} -d Body=hi \\",
            f"    --data-urlencode StatusCallback={inbox}",
            "",
            "Python, with the twilio SDK:",
            "",
            "from twilio.rest import Client",
            f'client = Client("{sid}", "{token}")',
            f'client.api.base_url = "{base}"',
            f'print(client.messages.create(to="{to}", from_="{DEV_NUMBER}", body="hi",',
            f'                             status_callback="{inbox}").sid)',
            "",
            "The queues, refreshed:",
            "",
            " ".join(
                f"{name}={env[name]}"
                for name in ("MYCPAAS_DATABASE_URL", "MYCPAAS_BROKER_URL", "MYCPAAS_REDIS_URL")
            )
            + " uv run mycpaas queues --watch",
            "",
            "Ctrl-C stops everything.",
        ]
    )


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)  # unwinds through _children, which stops every child


def run_dev(data_dir: Path, port: int) -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    env = {**os.environ, **dev_environment(data_dir, port)}
    os.environ.update(env)
    get_settings.cache_clear()
    upgrade()
    try:
        with session_scope() as session:
            check_secret_key(session)
    except SecretKeyError as exc:
        raise click.ClickException(f"{exc} (or start afresh with another --data-dir)") from exc
    sid, token = _dev_account()
    base = f"http://127.0.0.1:{port}"
    me = [sys.executable, "-m", "dispatcher.cli"]
    commands = [
        [*me, "serve", "--port", str(port)],
        [*me, "carrier-sim", "--port", str(port + 100)],
        [*me, "worker", "-Q", ",".join(QUEUES), "-c", "4", "-n", "dev@%h"],
        [*me, "beat", "--schedule-file", str(data_dir / "beat-schedule")],
    ]
    with Inbox(port + 200, token, click.echo) as inbox, _children(commands, env) as procs:
        click.echo(_banner(base, sid, token, inbox.url, env))
        try:
            while all(proc.poll() is None for proc in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("stopping…")
