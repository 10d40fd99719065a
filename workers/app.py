"""The Celery app: one queue per stage, explicit task names, settings that lose nothing.

A task message is only a wake-up call carrying ids; the row in Postgres is the truth. So the
app acks late, hands a task back when its worker dies, keeps no results and never schedules
long waits in the broker (those live in ``next_attempt_at``).
"""

import contextlib
import signal
import socket
import threading
from typing import Any

from celery import Celery, bootsteps
from kombu import Exchange, Queue

from schemas.settings import get_settings

SEGMENT_TASK = "sms.segment"
MEDIA_TASK = "mms.fetch_media"
CARRIER_TASK = "sms.carrier_submit"
RECEIPTS_TASK = "sms.apply_receipts"
INBOUND_TASK = "sms.inbound"
CALLBACK_TASK = "sms.callback"
SWEEP_TASK = "maintenance.sweep"
RETENTION_TASK = "maintenance.retention"
RETENTION_EVERY_S = 3600.0  # a pass an hour; each removes what became due since the last

QUEUES = ("segment", "media", "carrier", "callbacks", "maintenance")
ROUTES = {
    SEGMENT_TASK: "segment",
    MEDIA_TASK: "media",
    CARRIER_TASK: "carrier",
    RECEIPTS_TASK: "carrier",
    INBOUND_TASK: "carrier",
    CALLBACK_TASK: "callbacks",
    SWEEP_TASK: "maintenance",
    RETENTION_TASK: "maintenance",
}

# The task that drains each stage (the ``stage`` column of a message, the receipts inbox, the
# inbound parts).
STAGE_TASKS = {
    "segment": SEGMENT_TASK,
    "media": MEDIA_TASK,
    "carrier": CARRIER_TASK,
    "receipts": RECEIPTS_TASK,
    "inbound": INBOUND_TASK,
    "callbacks": CALLBACK_TASK,
}

VISIBILITY_TIMEOUT_S = 120  # unacked work returns to the queue after this; above every time limit
TASK_TIME_LIMIT_S = (
    90  # hard kill of a stuck task; below the visibility timeout so it never runs twice
)
TASK_SOFT_TIME_LIMIT_S = 60  # the task gets an exception first and can record its state
UNACKED_RESTORE_INTERVAL_S = 5  # how often a worker looks for unacked work of dead workers
BROKER_WAIT_S = 2  # a worker's blocking read of its queues (Redis) returns empty after this


class PromptShutdown(bootsteps.StartStopStep):
    """Wakes the worker's event loop as soon as a signal arrives.

    The loop notices a SIGTERM only when it wakes, and it sleeps until its next timer or
    broker read (seconds; up to 10 s with RabbitMQ without heartbeats): a warm shutdown would
    sit idle that long. Python writes each signal's number to the descriptor given to
    ``signal.set_wakeup_fd``; the loop watches the other end of that socket pair, so a signal
    wakes it at once. (It used to be woken every second instead: at rest, a fifth of a
    worker's CPU.)
    """

    requires = ("celery.worker.components:Hub",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._pair: tuple[socket.socket, socket.socket] | None = None

    def start(self, worker: Any) -> None:
        if worker.hub is None or threading.current_thread() is not threading.main_thread():
            return  # signals are handled in the main thread's loop alone
        reader, writer = self._pair = socket.socketpair()
        for end in self._pair:
            end.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        worker.hub.add_reader(reader.fileno(), _drain, reader)

    def stop(self, worker: Any) -> None:
        if self._pair is not None and threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)


def _drain(reader: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while reader.recv(512):
            pass


def make_app() -> Celery:
    settings = get_settings()
    app = Celery(
        "mycpaas", broker=settings.broker_url, include=["workers.tasks"], set_as_current=True
    )
    app.conf.update(
        # One direct exchange per queue: a wake-up reaches its stage's queue and no other.
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_default_queue="segment",
        task_routes={name: {"queue": queue} for name, queue in ROUTES.items()},
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        task_time_limit=TASK_TIME_LIMIT_S,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT_S,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings.broker_url, settings.redis_prefix),
        broker_pool_limit=20,
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": settings.sweep_interval_s,
                # A sweep nobody ran in time is replaced by the next one, not queued up.
                "options": {"queue": ROUTES[SWEEP_TASK], "expires": settings.sweep_interval_s},
            },
            "retention": {
                "task": RETENTION_TASK,
                "schedule": RETENTION_EVERY_S,
                "options": {"queue": ROUTES[RETENTION_TASK], "expires": RETENTION_EVERY_S},
            },
        },
    )
    app.steps["worker"].add(PromptShutdown)
    return app


def transport_options(broker_url: str, key_prefix: str) -> dict[str, object]:
    """Redis redelivers unacked work only after a visibility timeout; other brokers need none."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return {}
    return {
        "global_keyprefix": key_prefix,
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "unacked_restore_interval": UNACKED_RESTORE_INTERVAL_S,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        # A worker's wait for a task: each BRPOP that times out wakes its event loop (Celery's
        # consumer, a fifth of an idle worker's CPU at kombu's 1 s). A task still arrives at
        # once, but a warm shutdown waits for the read in flight: 5 s made an idle worker's
        # stop take 4-5 s, 2 s takes about 2. Below socket_timeout, as it must be.
        "polling_interval": BROKER_WAIT_S,
    }


app = make_app()
