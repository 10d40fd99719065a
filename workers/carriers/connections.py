"""A carrier worker's connections, by name, and the router that picks one per message.

Built once per worker process from the carriers file (``MYCPAAS_CARRIERS_FILE``,
schemas/carriers.py) or, without one, from the single-carrier settings: ``default``
(``MYCPAAS_CARRIER``) and, when set, ``mms`` (``MYCPAAS_MMS_CARRIER``, an HTTP gateway for
what SMPP cannot carry). Routing is workers/carriers/routing.py.
"""

from dataclasses import dataclass
from typing import Any

from workers.carriers.base import CarrierDriver
from workers.carriers.routing import Choice, Message, Router


@dataclass
class Connections:
    """The connections of one worker process; closed together at its shutdown."""

    drivers: dict[str, CarrierDriver]
    router: Router

    def choose(self, row: Any) -> Choice | None:
        """The route and connection a message (a messages row) leaves by; None: no route."""
        return self.router.choose(
            Message(
                row.to,
                row.from_number,
                bool(row.num_media),
                row.account_sid,
                row.messaging_service_sid,
            )  # fmt: skip
        )

    def close(self) -> None:
        for driver in self.drivers.values():
            driver.close()
