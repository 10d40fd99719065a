"""``mycpaas dev``: the platform in one process group on an embedded store, for a first look.

It needs no server: the record is a SQLite file and the broker is kombu's SQLAlchemy transport
on a second SQLite file (durable, no daemon, and the same kombu code path as production brokers;
slower than Redis, which does not matter for one developer). Ctrl-C stops every child.

The console stays readable: the banner comes once every part answers, then one line per status
change (read from the record) and per callback the inbox receives. Each child's own output
(Celery's banners, request and task lines) goes to ``<data-dir>/logs/<part>.log``.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
import httpx
from sqlalchemy import delete, func
from sqlmodel import select

from dispatcher.cli.inbox import Inbox
from dispatcher.console.auth import create_operator
from dispatcher.intake.accounts import add_number, rotate_token
from schemas.console import console_sessions_table, operators_table
from schemas.credentials import SecretKeyError, check_secret_key
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.migrate import upgrade
from schemas.models import Account, PhoneNumber, message_events_table
from schemas.settings import get_settings
from workers.app import QUEUES

DEV_ACCOUNT_NAME = "dev"
DEV_OPERATOR = "dev"
DEV_NUMBER = "+15005550006"  # Twilio's magic "valid" test number; valid for libphonenumber too
STOP_GRACE_S = 10.0  # children get this long to finish their work after Ctrl-C
READY_TIMEOUT_S = 60.0  # every part answers within this, or dev says which did not
FEED_EVERY_S = 0.5  # status changes are printed this often
WORKER_READY = " ready."  # what Celery logs once the worker consumes


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


def _dev_operator() -> str:
    """The dev operator (an admin), with a fresh password each start."""
    with session_scope() as session:
        session.execute(delete(console_sessions_table).where(
            console_sessions_table.c.operator == DEV_OPERATOR))  # fmt: skip
        session.execute(delete(operators_table).where(operators_table.c.name == DEV_OPERATOR))
        session.commit()
        return create_operator(session, DEV_OPERATOR, "admin")


def _webhook_to(url: str) -> None:
    """The dev number's SmsUrl, unless the developer set one: the inbox."""
    with session_scope() as session:
        number = session.get(PhoneNumber, DEV_NUMBER)
        if number is not None and not number.sms_url:
            number.sms_url = url
            session.add(number)
            session.commit()


@contextmanager
def _children(
    commands: dict[str, list[str]], env: dict[str, str], logs: Path
) -> Iterator[dict[str, subprocess.Popen]]:
    """Start each part with its output in ``logs/<part>.log``; stop them all on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    with ExitStack() as files:
        for name, command in commands.items():
            log = files.enter_context((logs / f"{name}.log").open("ab"))
            procs[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield procs
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for proc in procs.values():
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_ready(checks: dict[str, Callable[[], bool]], procs: dict[str, subprocess.Popen],
                logs: Path) -> None:  # fmt: skip
    """Return once every check passes; fail naming the part that exited or never answered."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = dict(checks)
    while waiting:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise click.ClickException(
                    f"{name} exited with {proc.returncode}; see {logs / f'{name}.log'}"
                )
        waiting = {name: check for name, check in waiting.items() if not check()}
        if waiting and time.monotonic() > deadline:
            raise click.ClickException(
                f"{', '.join(waiting)} did not answer within {READY_TIMEOUT_S:.0f} s; see {logs}"
            )
        time.sleep(0.1)


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _logged(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.exists() and text in path.read_text(errors="replace")


class StatusFeed:
    """Prints each status change as the record gets it: ``SM… sent``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._stop = threading.Event()
        with session_scope() as session:
            self._last = session.exec(select(func.max(message_events_table.c.id))).one() or 0
        self._thread = threading.Thread(target=self._run, name="status-feed", daemon=True)

    def __enter__(self) -> "StatusFeed":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        e = message_events_table.c
        while not self._stop.wait(FEED_EVERY_S):
            try:
                with session_scope() as session:
                    rows = session.exec(
                        select(e.id, e.message_sid, e.status, e.error_code)
                        .where(e.id > self._last).order_by(e.id).limit(500)
                    ).all()  # fmt: skip
            except Exception as exc:  # the store is busy or gone; the next round tries again
                self._say(f"(status feed: {exc})")
                continue
            for event_id, sid, status, code in rows:
                self._last = event_id
                self._say(f"message  {sid} {status}{f' error {code}' if code else ''}")


def _banner(base: str, sid: str, token: str, inbox: str, env: dict[str, str]) -> str:
    to = "+14155552671"
    sim = f"{base.rsplit(':', 1)[0]}:{int(base.rsplit(':', 1)[1]) + 100}"
    mo = json.dumps({"from": to, "to": DEV_NUMBER, "body": "hi"})
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
            f"Text {DEV_NUMBER} as a handset would (its SmsUrl is the inbox, which prints it):",
            "",
            f"  curl {sim}/mo -H 'content-type: application/json' -d '{mo}'",
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
    logging.getLogger().setLevel(logging.WARNING)  # this console is for the banner and feed
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
    sim = f"http://127.0.0.1:{port + 100}"
    logs = data_dir / "logs"
    me = [sys.executable, "-m", "dispatcher.cli"]
    commands = {
        "api": [*me, "serve", "--port", str(port)],
        "carrier-sim": [*me, "carrier-sim", "--port", str(port + 100)],
        "worker": [*me, "worker", "-Q", ",".join(QUEUES), "-c", "4", "-n", "dev@%h"],
        "beat": [*me, "beat", "--schedule-file", str(data_dir / "beat-schedule")],
        "console": [*me, "console", "--port", str(port + 300)],
    }
    login = _dev_operator()
    with (
        Inbox(port + 200, token, click.echo) as inbox,
        _children(commands, env, logs) as procs,
    ):
        checks = {"api": _answers(f"{base}/readyz"), "carrier-sim": _answers(f"{sim}/healthz"),
                  "worker": _logged(logs / "worker.log", WORKER_READY)}  # fmt: skip
        click.echo(f"starting: API, carrier simulator, worker, beat, console (logs in {logs}/)")
        _wait_ready(checks, procs, logs)
        _webhook_to(inbox.url)
        click.echo(_banner(base, sid, token, inbox.url, env))
        click.echo(f"The operator console: http://127.0.0.1:{port + 300}  (log in as dev, "
                   f"password {login})\n")  # fmt: skip
        with StatusFeed(click.echo):
            try:
                while all(proc.poll() is None for proc in procs.values()):
                    time.sleep(0.5)
            except KeyboardInterrupt:
                click.echo("stopping…")
                return
        for name, proc in procs.items():
            if proc.poll() is not None:
                click.echo(f"{name} exited with {proc.returncode}; see {logs / f'{name}.log'}")
