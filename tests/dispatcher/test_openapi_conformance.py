"""The API's real answers conform to its OpenAPI document (bodies, statuses and content types,
checked with schemathesis)."""

import base64
from typing import Any

import httpx
import pytest
import schemathesis

from dispatcher.intake.accounts import add_number
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.models import Media as MediaRow
from schemas.status import MessageStatus
from schemas.types import utcnow
from tests.api import CONFORMANCE_CHECKS as CHECKS
from tests.api import CREATES, FORM, JSON, NUMBERS, POOL, POOL_ONE, SERVICE, SERVICES, TWILIO, V1
from tests.processes import Account, random_number
from workers.pipeline.transitions import move


@pytest.fixture(scope="module")
def schema(document: dict[str, Any]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(document)


def basic(account: Account) -> dict[str, str]:
    credentials = base64.b64encode(f"{account.sid}:{account.token}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def failed_mms_with_media(api_url: str, account: Account, surface: str) -> tuple[str, str]:
    """An MMS that went as far as it can (its media fetched, a callback owed, then failed),
    made through the API and the workers' own transition."""
    path = f"/v1/Accounts/{account.sid}/Messages" if surface == V1 else (
        f"/2010-04-01/Accounts/{account.sid}/Messages.json"
    )  # fmt: skip
    created = httpx.post(
        f"{api_url}{path}",
        data={"To": random_number(), "From": account.number, "Body": "ü",
              "MediaUrl": ["https://example.org/a.png"],
              "StatusCallback": "http://127.0.0.1:9/cb"},
        auth=account.auth,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    sid = created.json()["sid"]
    media_sid = new_sid("ME")
    with session_scope() as session:
        session.add(
            MediaRow(
                sid=media_sid, message_sid=sid, account_sid=account.sid, position=0,
                source_url="https://example.org/a.png", content_type="image/png",
                size_bytes=4, sha256="0" * 64, content=b"\x89PNG",
            )
        )  # fmt: skip
        move(session, [sid], MessageStatus.FAILED, error_code=30008,
             error_message="Unknown error", date_sent=utcnow())  # fmt: skip
        session.commit()
    return sid, media_sid


@pytest.mark.parametrize("surface", CREATES, ids=["v1", "2010-04-01"])
def test_real_answers_conform_to_the_document(
    api_url: str,
    schema: schemathesis.BaseSchema,
    account: Account,
    other_account: Account,
    surface: str,
) -> None:
    # given: one message of every kind of field, and requests for each documented answer
    sid, media_sid = failed_mms_with_media(api_url, account, surface)
    prefix = surface.removesuffix("/Messages.json").removesuffix("/Messages")
    suffix = ".json" if surface == TWILIO else ""
    content = "" if suffix else "/Content"
    messages = f"{prefix}/Messages{suffix}"
    one = f"{prefix}/Messages/{{sid}}{suffix}"
    form = {"To": random_number(), "From": account.number, "Body": "hi"}
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", messages, {"body": form, "media_type": FORM}),
        ("POST", messages, {"body": {**form, "MediaUrl": "https://example.org/a.gif"},
                            "media_type": JSON}),
        ("POST", messages, {"body": {"To": random_number()}, "media_type": FORM}),
        ("POST", messages, {"body": form, "media_type": FORM,
                            "headers": {"Idempotency-Key": sid}}),
        ("POST", messages, {"body": {**form, "Body": "other"}, "media_type": FORM,
                            "headers": {"Idempotency-Key": sid}}),
        ("GET", messages, {"query": {"PageSize": "1", "Status": "failed"}}),
        ("GET", messages, {"query": {"PageSize": "x"}}),
        ("GET", one, {}),
        ("GET", f"{prefix}/Messages/{{sid}}/Media{suffix}", {}),
        ("GET", f"{prefix}/Messages/{{sid}}/Media/{{media_sid}}{suffix}", {}),
        ("GET", f"{prefix}/Messages/{{sid}}/Media/{{media_sid}}{content}", {}),
        ("GET", f"{prefix}/Messages/{{sid}}/Callbacks{suffix}", {}),
        ("POST", f"{prefix}/Messages/{{sid}}/Callbacks/Replay{suffix}", {}),
        ("POST", one, {"body": {"Status": "canceled"}, "media_type": FORM}),
        ("POST", one, {"body": {"Body": ""}, "media_type": JSON}),
        ("DELETE", f"{prefix}/Messages/{{sid}}/Media/{{media_sid}}{suffix}", {}),
        ("DELETE", one, {}),
    ]  # fmt: skip
    names = {"account_sid": account.sid, "sid": sid, "media_sid": media_sid}
    statuses = set()
    for method, path, parts in requests:
        fixed = {name: value for name, value in names.items() if f"{{{name}}}" in path}
        case = schema[path][method].Case(path_parameters=fixed, **parts)
        # when
        response = case.call_and_validate(base_url=api_url, headers=basic(account), checks=CHECKS)
        statuses.add(response.status_code)
    # then: successes and refusals were all checked against the document
    assert statuses == {200, 201, 204, 400, 409, 422}
    refusals = [
        schema[one]["GET"].Case(path_parameters={"account_sid": account.sid, "sid": sid}),
        schema[one]["GET"].Case(path_parameters={"account_sid": other_account.sid, "sid": sid}),
    ]
    for case, headers, status in zip(refusals, ({}, basic(account)), (401, 404), strict=True):
        response = case.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS)
        assert response.status_code == status


def test_services_and_numbers_answer_as_documented(
    api_url: str, schema: schemathesis.BaseSchema, account: Account, other_account: Account
) -> None:
    """Every Messaging Service and IncomingPhoneNumbers operation, through its success and its
    refusals, checked against the document."""
    # given
    with session_scope() as session:
        spare = add_number(session, account.sid, random_number()).sid
    statuses = set()

    def call(method: str, path: str, expected: int, **parts: Any) -> Any:
        names = {"account_sid": account.sid, **parts.pop("names", {})}
        fixed = {name: value for name, value in names.items() if f"{{{name}}}" in path}
        case = schema[path][method].Case(path_parameters=fixed, **parts)
        response = case.call_and_validate(base_url=api_url, headers=basic(account), checks=CHECKS)
        assert response.status_code == expected, (method, path, response.text)
        statuses.add(expected)
        return response.json() if response.content else None

    # when
    created = call("POST", SERVICES, 201, body={"FriendlyName": "alerts", "StickySender": False,
                   "MmsConverter": False, "StatusCallback": "https://example.org/s"},
                   media_type=FORM)  # fmt: skip
    service = {"sid": created["sid"], "service_sid": created["sid"]}
    call("POST", SERVICES, 201, body={"FriendlyName": "other", "ValidityPeriod": 60},
         media_type=JSON)  # fmt: skip
    call("POST", SERVICES, 400, body={"StickySender": True}, media_type=FORM)
    call("GET", SERVICES, 200, query={"PageSize": 1})
    call("GET", SERVICE, 200, names=service)
    call("POST", SERVICE, 200, names=service, body={"Usecase": "marketing"}, media_type=FORM)
    call("POST", SERVICE, 400, names=service, body={"AreaCodeGeomatch": True}, media_type=FORM)
    [number] = call("GET", NUMBERS, 200, query={"PhoneNumber": account.number})[
        "incoming_phone_numbers"]  # fmt: skip
    pooled = {**service, "sid": number["sid"]}
    call("POST", POOL, 201, names=service, body={"PhoneNumberSid": number["sid"]},
         media_type=FORM)  # fmt: skip
    call("GET", POOL, 200, names=service, query={"PageSize": 1})
    call("GET", POOL_ONE, 200, names=pooled)
    for twilio in (False, True):
        numbers = NUMBERS.replace("/v1/", "/2010-04-01/") if twilio else NUMBERS
        suffix = ".json" if twilio else ""
        call("GET", numbers + suffix, 200)
        call("GET", numbers + suffix, 400, query={"Page": "x"})
        call("GET", f"{numbers}/{{sid}}{suffix}", 200, names={"sid": spare})
        call("GET", f"{numbers}/{{sid}}{suffix}", 404, names={"sid": new_sid("PN")})
    other = call("POST", SERVICES, 201, body={"FriendlyName": "third"}, media_type=FORM)["sid"]
    call("POST", POOL, 409, names={"service_sid": other}, body={"PhoneNumberSid": number["sid"]},
         media_type=FORM)  # fmt: skip
    call("DELETE", POOL_ONE, 204, names=pooled)
    call("DELETE", SERVICE, 204, names=service)
    call("GET", SERVICE, 404, names=service)
    # then
    assert statuses == {200, 201, 204, 400, 404, 409}
    case = schema[SERVICE]["GET"].Case(path_parameters={"sid": other})
    response = case.call_and_validate(base_url=api_url, headers=basic(other_account),
                                      checks=CHECKS)  # fmt: skip
    assert response.status_code == 404
