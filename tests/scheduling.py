"""How ``pytest -n 2 --dist loadscope`` (pyproject's addopts) shares the tests out.

xdist's ``loadscope`` hands each module to one worker (its module-scoped servers start once,
its tests run back to back, and modules such as ``tests/test_services.py`` never run beside
themselves). Here the session platform's tests are one more scope per broker, whatever their
module, so a worker starts each platform at most once (``tests/e2e/conftest.py``). The order
is the collection's (``--no-loadscope-reorder``), which ``tests/conftest.py`` starts with the
end-to-end tests.

(``--dist loadgroup`` with ``xdist_group`` marks would say the same, but with pytest 9.2 it
groups nothing: pytest-dev/pytest-xdist#1386.)
"""

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.conftest import BROKERS

E2E = "tests/e2e/"


def scope(nodeid: str) -> str:
    """``platform-<broker>`` for a test of the session platform, else its module."""
    module, _, name = nodeid.partition("::")
    if module.startswith(E2E) and name.endswith("]"):
        params = name[name.index("[") + 1 : -1].split("-")
        broker = next((param for param in params if param in BROKERS), None)
        if broker is not None:
            return f"platform-{broker}"
    return module


class ModulesAndPlatformsScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        return scope(nodeid)


class ModulesAndPlatforms:
    """The plugin: ``loadscope`` with the platform's scopes."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(
        self, config: pytest.Config, log: object
    ) -> LoadScopeScheduling | None:
        if config.getvalue("dist") != "loadscope":
            return None
        return ModulesAndPlatformsScheduling(config, log)  # type: ignore[arg-type]
