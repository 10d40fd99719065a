"""The simulator's SMSC as a real process, for tests that speak SMPP over loopback sockets."""

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import free_port, start, stop, wait_http
from tests.smpp_wire import wire_check


@dataclass
class Smsc:
    http: str  # the simulator's HTTP side: counters and the fault routes
    port: int  # its SMPP port, as drivers reach it: through tests.smpp_wire's check
    direct_port: int  # its SMPP port itself, for tests that send what the check would refuse
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen

    def counters(self, prefix: str = "") -> dict[str, Any]:
        answer = httpx.get(f"{self.http}/counters", params={"prefix": prefix}, timeout=5)
        answer.raise_for_status()
        smpp: dict[str, Any] = answer.json()["smpp"]
        return smpp

    def submits(self, prefix: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.http}/smpp/submits", params={"prefix": prefix}, timeout=5)
        result: list[dict[str, Any]] = answer.json()["submits"]
        return result

    def post(self, path: str, **params: object) -> dict[str, Any]:
        json = params.pop("json", None)
        answer = httpx.post(f"{self.http}{path}", params=params, json=json, timeout=5)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def kill(self) -> None:
        """Like a crash: no unbind, nothing flushed but what the journal already holds."""
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.proc = start(self.args, self.env)
        wait_http(f"{self.http}/healthz", proc=self.proc)


@contextlib.contextmanager
def smsc_process(*options: str, journal: Path | None = None,
                 env: dict[str, str] | None = None) -> Iterator[Smsc]:  # fmt: skip
    """``mycpaas carrier-sim --smpp-port …`` with ``options``; stopped on exit."""
    http_port, smpp_port = free_port(), free_port()
    args = ["mycpaas", "carrier-sim", "--port", str(http_port), "--smpp-port", str(smpp_port),
            *options]  # fmt: skip
    if journal is not None:
        args += ["--journal", str(journal)]
    proc = start(args, env)
    with wire_check(smpp_port) as wire:  # the driver reaches the SMSC through the check
        smsc = Smsc(f"http://127.0.0.1:{http_port}", wire.port, smpp_port, args, env or {}, proc)
        try:
            wait_http(f"{smsc.http}/healthz", proc=proc)
            yield smsc
        finally:
            stop(smsc.proc)
