"""The OpenAPI document says what the API really takes and answers, and the API's real answers
conform to it (bodies, statuses and content types, checked with schemathesis)."""

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import BaseModel
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dispatcher.app import create_app
from dispatcher.intake import CREATE_PARAMS, IGNORED_PARAMS
from dispatcher.listing import LIST_PARAMS
from dispatcher.render import media_item, twilio_message, v1_message
from dispatcher.representations import Media, Message, TwilioMedia, TwilioMessage
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.models import Media as MediaRow
from schemas.models import Message as MessageRow
from schemas.status import MessageStatus
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.transitions import move

V1 = "/v1/Accounts/{account_sid}/Messages"
TWILIO = "/2010-04-01/Accounts/{account_sid}/Messages.json"
CREATES = [V1, TWILIO]
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def document(api_url: str) -> dict[str, Any]:
    return httpx.get(f"{api_url}/openapi.json").json()


@pytest.fixture(scope="module")
def schema(document: dict[str, Any]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(document)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def basic(account: Account) -> dict[str, str]:
    credentials = base64.b64encode(f"{account.sid}:{account.token}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[-1]
    return document["components"]["schemas"][name]


def test_the_live_document_is_the_applications(document: dict[str, Any]) -> None:
    assert document == create_app().openapi()


@pytest.mark.parametrize("path", CREATES)
def test_create_takes_every_parameter_as_a_form_or_json(
    document: dict[str, Any], path: str
) -> None:
    # given
    body = document["paths"][path]["post"]["requestBody"]
    # then
    assert body["required"] is True
    assert list(body["content"]) == [FORM, JSON]  # the form first: what /docs offers
    for media_type in (FORM, JSON):
        params = resolve(document, body["content"][media_type]["schema"])
        assert set(params["properties"]) == CREATE_PARAMS | IGNORED_PARAMS
        assert params["required"] == ["To", "From"]
        assert params["additionalProperties"] is False
    form = resolve(document, body["content"][FORM]["schema"])
    assert form["properties"]["MediaUrl"]["type"] == "array"
    assert form["properties"]["MediaUrl"]["maxItems"] == 10
    assert body["content"][FORM]["encoding"]["MediaUrl"] == {"style": "form", "explode": True}


def test_no_operation_documents_the_validation_error_the_api_never_answers(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        refusals = {status for status in operation["responses"] if status >= "400"}
        if method == "post" and path in CREATES:
            assert "422" in refusals  # an Idempotency-Key reused with other parameters
        else:
            assert "422" not in refusals, (method, path)
        for status in refusals:
            content = operation["responses"][status]["content"][JSON]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


EXPECTED_STATUSES = {
    ("post", V1): {"201", "400", "401", "404", "413", "415", "422", "429", "503"},
    ("get", V1): {"200", "400", "401", "404", "503"},
    ("post", "/carrier/receipts"): {"200", "400", "401", "413", "415", "503"},
}


def test_each_operation_documents_what_it_answers(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        twin = path.replace("/2010-04-01/", "/v1/").replace(".json", "")
        expected = EXPECTED_STATUSES.get((method, twin), {"200", "401", "404", "503"})
        assert set(operation["responses"]) == expected, (method, path)


def test_credentials_are_security_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["accountBasic"] == {
        "type": "http",
        "scheme": "basic",
        "description": schemes["accountBasic"]["description"],
    }
    assert schemes["carrierBearer"]["scheme"] == "bearer"
    for path, method, operation in operations(document):
        expected = "carrierBearer" if path == "/carrier/receipts" else "accountBasic"
        assert operation["security"] == [{expected: []}], (method, path)
        names = {parameter["name"].lower() for parameter in operation.get("parameters", [])}
        assert "authorization" not in names


@pytest.mark.parametrize("path", CREATES)
def test_list_documents_its_query_parameters(document: dict[str, Any], path: str) -> None:
    parameters = document["paths"][path]["get"]["parameters"]
    query = {parameter["name"] for parameter in parameters if parameter["in"] == "query"}
    assert query == LIST_PARAMS


@pytest.mark.parametrize(
    ("render", "model"), [(v1_message, Message), (twilio_message, TwilioMessage)]
)
def test_a_rendered_message_has_exactly_the_documented_fields(
    render: Any, model: type[BaseModel]
) -> None:
    # given
    now = utcnow()
    row = MessageRow(
        sid=new_sid("SM"), account_sid=new_sid("AC"), to="+4915112345678",
        from_="+4915187654321", body="x", num_segments=1, encoding="GSM-7",
        validity_period_s=600, expires_at=now, date_created=now, date_updated=now,
    )  # fmt: skip
    # when
    rendered = render(row)
    # then
    assert set(rendered) == {field.alias or name for name, field in model.model_fields.items()}
    model.model_validate(rendered)


@pytest.mark.parametrize(("suffix", "model"), [("", Media), (".json", TwilioMedia)])
def test_a_rendered_attachment_has_exactly_the_documented_fields(
    suffix: str, model: type[BaseModel]
) -> None:
    item = MediaRow(
        sid=new_sid("ME"), message_sid=new_sid("MM"), account_sid=new_sid("AC"), position=0,
        source_url="http://x/a.png", content_type="image/png", size_bytes=3, sha256="0" * 64,
        content=b"png", date_created=utcnow(),
    )  # fmt: skip
    rendered = media_item(item, "/v1/Accounts/AC/Messages", suffix)
    assert set(rendered) == set(model.model_fields)
    model.model_validate(rendered)


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
    assert statuses == {200, 201, 400, 422}
    refusals = [
        schema[one]["GET"].Case(path_parameters={"account_sid": account.sid, "sid": sid}),
        schema[one]["GET"].Case(path_parameters={"account_sid": other_account.sid, "sid": sid}),
    ]
    for case, headers, status in zip(refusals, ({}, basic(account)), (401, 404), strict=True):
        response = case.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS)
        assert response.status_code == status
