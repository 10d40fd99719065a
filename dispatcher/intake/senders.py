"""Choosing a message's sender from its Messaging Service's pool.

Sticky services (Twilio's default) keep one sender per destination, so a person always hears
from the same number; the choice is recorded in ``sticky_senders`` in the message's own
transaction, and a concurrent first message to the same destination finds the same row. The
first choice, and every choice of a non-sticky service, is spread across the pool in
proportion to each number's throughput (``--sps``), which is what the sender throttle lets
each number send.
"""

import random

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from dispatcher.errors import InvalidParameter
from dispatcher.intake.services import pool
from schemas.models import MessagingService, sticky_senders_table
from schemas.settings import get_settings
from schemas.types import utcnow

EMPTY_POOL = 21704  # Twilio: the Messaging Service has no phone numbers

st = sticky_senders_table.c


def spread(rates: dict[str, float]) -> str:
    """A number drawn with a chance proportional to its throughput."""
    numbers = sorted(rates)
    return random.choices(numbers, weights=[rates[n] for n in numbers])[0]


def choose_sender(session: Session, service: MessagingService, to: str) -> str:
    """The number ``service`` sends to ``to`` from; the caller commits (a sticky choice)."""
    key = (st.service_sid == service.sid, st.to == to)
    if service.sticky_sender:
        # A number that leaves the pool takes its sticky rows along (services.remove_from_pool),
        # so a row found here names a member: one read per message once a destination is known.
        current = session.execute(select(st.phone_number).where(*key)).scalar()
        if current is not None:
            return str(current)
    default = get_settings().default_sender_sps
    rates = {
        number.phone_number: number.segments_per_second or default
        for _, number in pool(session, service.sid)
    }
    if not rates:
        raise InvalidParameter(
            f"Messaging Service {service.sid} has no phone numbers to send from", code=EMPTY_POOL
        )
    chosen = spread(rates)
    if not service.sticky_sender:
        return chosen
    row = {"service_sid": service.sid, "to": to, "phone_number": chosen, "date_created": utcnow()}
    # A concurrent first message to ``to`` may insert first: then both use its choice.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(sticky_senders_table).values(row).on_conflict_do_nothing())
    return str(session.execute(select(st.phone_number).where(*key)).scalar_one())
