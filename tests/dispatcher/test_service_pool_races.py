"""A number put in a pool by two requests at once, or while its service is deleted: the two
transactions interleaved on the real database (the other one commits inside the first one's
``before_commit``, after the first read the number in no pool)."""

import pytest
from sqlalchemy import event
from sqlmodel import Session

from dispatcher.errors import ApiError
from dispatcher.intake import services
from schemas.db import session_scope
from tests.dispatcher.test_services import more_numbers
from tests.processes import Account


@pytest.mark.parametrize("same_service", [True, False], ids=["same service", "another service"])
def test_a_number_added_to_a_pool_by_two_requests_at_once(
    account: Account, same_service: bool
) -> None:
    """Both read "in no pool"; the other commits first. The same service: both succeed; another
    service: the later one is refused with a 409, never a database error (a 500)."""
    params = {"FriendlyName": ["pool race"]}
    with session_scope() as session:
        ours = services.create_service(session, account.sid, params)
        theirs = ours if same_service else services.create_service(session, account.sid, params)
        [number] = more_numbers(account, 1.0)
        phone = services.find_number(session, account.sid, number)

    def the_other_request_commits_first(_session: Session) -> None:
        with session_scope() as other:
            services.add_to_pool(other, theirs, services.find_number(other, account.sid, number))

    with session_scope() as racing:
        event.listen(racing, "before_commit", the_other_request_commits_first, once=True)
        if same_service:
            member = services.add_to_pool(racing, ours, phone)
            assert member.service_sid == ours.sid
        else:
            with pytest.raises(ApiError) as refused:
                services.add_to_pool(racing, ours, phone)
            assert refused.value.http_status == 409
    with session_scope() as session:
        [(member, _)] = services.pool(session, theirs.sid)
        assert member.phone_number == number


def test_a_number_added_to_a_service_deleted_meanwhile_is_a_404(account: Account) -> None:
    with session_scope() as session:
        service = services.create_service(session, account.sid, {"FriendlyName": ["gone"]})
        [number] = more_numbers(account, 1.0)
        phone = services.find_number(session, account.sid, number)

    def the_service_is_deleted_first(_session: Session) -> None:
        with session_scope() as other:
            services.delete_service(other, services.find_service(other, account.sid, service.sid))

    with session_scope() as racing:
        event.listen(racing, "before_commit", the_service_is_deleted_first, once=True)
        with pytest.raises(ApiError) as refused:
            services.add_to_pool(racing, service, phone)
    assert refused.value.http_status == 404
