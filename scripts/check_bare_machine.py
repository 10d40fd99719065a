"""Runs the whole suite as on a machine with nothing but Python and uv, and checks it passed.

The machine's services are hidden, not stopped (other runs may be using them):
- PATH holds every command of the current PATH except the servers' (redis-*, Postgres'
  binaries, rabbitmq*), so nothing can start the machine's copies;
- MYCPAAS_TEST_* and CI are unset, and the tests look for the machine's Postgres, Redis and
  RabbitMQ on a loopback port this script holds bound but never listens on, so none answers;
- TMPDIR is a directory of its own, so what the session leaves behind can be seen.

Then it checks that the session started its own Postgres and Redis, reported the
broker-parity tests as not run, passed, and left no server listening and no scratch
directory behind. Usage (extra arguments go to pytest):

    python3 scripts/check_bare_machine.py [pytest args]
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HIDDEN_PREFIXES = ("redis-", "pg_", "rabbitmq")
HIDDEN_NAMES = {"postgres", "postmaster", "psql", "initdb", "createdb", "dropdb", "pgbench", "epmd"}
THROWAWAY = re.compile(r"^(postgres|redis): throwaway at 127\.0\.0\.1:(\d+)", re.M)


def hidden(name: str) -> bool:
    return name.startswith(HIDDEN_PREFIXES) or name in HIDDEN_NAMES


def shadow_path(directory: Path) -> str:
    """A single directory of links to every command on PATH but the servers' (first one wins)."""
    directory.mkdir()
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not Path(entry).is_dir():
            continue
        for command in sorted(Path(entry).iterdir()):
            link = directory / command.name
            if hidden(command.name) or link.exists() or not os.access(command, os.X_OK):
                continue
            link.symlink_to(command.absolute())
    return str(directory)


def dead_port() -> socket.socket:
    """A loopback port bound and never listened on: connections to it are refused, and
    nothing else can take it while the socket stays open."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def verdict(returncode: int, output: str, tmp: Path) -> list[str]:
    """What went wrong, if anything: the run must pass on throwaway servers it stopped."""
    problems = [] if returncode == 0 else [f"pytest exited with {returncode}"]
    throwaways = dict(THROWAWAY.findall(output))
    for name in ("postgres", "redis"):
        if name not in throwaways:
            problems.append(f"no throwaway {name} was started")
        elif answers(int(throwaways[name])):
            problems.append(f"the throwaway {name} still answers on {throwaways[name]}")
    problems += [f"left behind: {path.name}" for path in tmp.glob("mycpaas-test-*")]
    if "rabbitmq: none" not in output:
        problems.append("the broker-parity tests were not reported as not run")
    return problems


def main() -> int:
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not on PATH", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="mycpaas-bare-"))
    scratch.chmod(0o711)  # a throwaway Postgres started by root runs as nobody, inside it
    (scratch / "tmp").mkdir(mode=0o711)
    nowhere = dead_port()
    port = nowhere.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYCPAAS_") and k != "CI"}
    env |= {
        "PATH": shadow_path(scratch / "bin"),
        "TMPDIR": str(scratch / "tmp"),
        "MYCPAAS_TEST_PROBE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test",
        "MYCPAAS_TEST_PROBE_REDIS_URL": f"redis://127.0.0.1:{port}/9",
        "MYCPAAS_TEST_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}",
    }
    command = [uv, "run", "--frozen", "pytest", *sys.argv[1:]]
    print(f"$ {' '.join(command)}  (PATH without servers, nothing at 127.0.0.1:{port})")
    started = time.monotonic()
    output: list[str] = []
    try:
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                output.append(line)
        took_s = time.monotonic() - started
        problems = verdict(proc.returncode, "".join(output), scratch / "tmp")
    finally:
        nowhere.close()
        shutil.rmtree(scratch, ignore_errors=True)
    for problem in problems:
        print(f"check_bare_machine: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_bare_machine: passed on a bare machine in {took_s:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
