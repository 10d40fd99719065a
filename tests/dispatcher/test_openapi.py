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

from dispatcher.accounts import add_number
from dispatcher.app import create_app
from dispatcher.intake import CREATE_PARAMS, IGNORED_PARAMS, NO_OP_VALUES, REFUSED_PARAMS
from dispatcher.listing import LIST_PARAMS
from dispatcher.message_representations import Media, Message, TwilioMedia, TwilioMessage
from dispatcher.number_representations import IncomingPhoneNumber, TwilioIncomingPhoneNumber
from dispatcher.number_routes import LIST_PARAMS as NUMBER_LIST_PARAMS
from dispatcher.render import incoming_number, media_item, twilio_message, v1_message
from dispatcher.service_representations import Service, ServicePhoneNumber
from dispatcher.service_routes import number_resource, service_resource
from dispatcher.services import FIELDS as SERVICE_FIELDS
from dispatcher.services import NO_OP_VALUES as SERVICE_NO_OP_VALUES
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.models import Media as MediaRow
from schemas.models import Message as MessageRow
from schemas.models import MessagingService, ServiceNumber
from schemas.models import PhoneNumber as PhoneNumberRow
from schemas.status import MessageStatus
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.pipeline.transitions import move

V1 = "/v1/Accounts/{account_sid}/Messages"
V1_ONE = "/v1/Accounts/{account_sid}/Messages/{sid}"
V1_MEDIA_ONE = "/v1/Accounts/{account_sid}/Messages/{sid}/Media/{media_sid}"
TWILIO = "/2010-04-01/Accounts/{account_sid}/Messages.json"
SERVICES = "/v1/Services"
SERVICE = "/v1/Services/{sid}"
POOL = "/v1/Services/{service_sid}/PhoneNumbers"
POOL_ONE = "/v1/Services/{service_sid}/PhoneNumbers/{sid}"
NUMBERS = "/v1/Accounts/{account_sid}/IncomingPhoneNumbers"
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
        properties = params["properties"]
        refused = {name for name, schema in properties.items() if schema.get("not") == {}}
        # then: the document names exactly what intake accepts, and what it refuses by name
        assert set(properties) - refused == CREATE_PARAMS | IGNORED_PARAMS | set(NO_OP_VALUES)
        assert refused == set(REFUSED_PARAMS)
        for name, harmless in NO_OP_VALUES.items():
            assert [str(value).lower() for value in properties[name]["enum"]] == [harmless]
        assert properties["ScheduleType"]["enum"] == ["fixed"]
        assert properties["SendAt"]["format"] == "date-time"
        assert properties["MessagingServiceSid"]["pattern"] == "^MG[0-9a-f]{32}$"
        # From, or a Messaging Service to choose it
        assert params["required"] == ["To"]
        assert params["anyOf"] == [{"required": ["From"]}, {"required": ["MessagingServiceSid"]}]
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
    ("post", f"{V1}/Bulk"): {"200", "400", "401", "404", "413", "415", "429", "503"},
    ("get", V1): {"200", "400", "401", "404", "503"},
    ("post", V1_ONE): {"200", "400", "401", "404", "409", "413", "415", "503"},
    ("delete", V1_ONE): {"204", "401", "404", "409", "503"},
    ("delete", V1_MEDIA_ONE): {"204", "401", "404", "409", "503"},
    ("get", NUMBERS): {"200", "400", "401", "404", "503"},
    ("post", SERVICES): {"201", "400", "401", "413", "415", "503"},
    ("get", SERVICES): {"200", "400", "401", "503"},
    ("post", SERVICE): {"200", "400", "401", "404", "413", "415", "503"},
    ("delete", SERVICE): {"204", "401", "404", "503"},
    ("post", POOL): {"201", "400", "401", "404", "409", "413", "415", "503"},
    ("get", POOL): {"200", "400", "401", "404", "503"},
    ("delete", POOL_ONE): {"204", "401", "404", "503"},
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


def query_of(document: dict[str, Any], path: str) -> set[str]:
    parameters = document["paths"][path]["get"]["parameters"]
    return {parameter["name"] for parameter in parameters if parameter["in"] == "query"}


@pytest.mark.parametrize("path", CREATES)
def test_list_documents_its_query_parameters(document: dict[str, Any], path: str) -> None:
    assert query_of(document, path) == LIST_PARAMS


def test_other_lists_document_their_query_parameters(document: dict[str, Any]) -> None:
    for path in (NUMBERS, NUMBERS.replace("/v1/", "/2010-04-01/") + ".json"):
        assert query_of(document, path) == NUMBER_LIST_PARAMS
    for path in (SERVICES, POOL):
        assert query_of(document, path) == {"Page", "PageSize"}


def test_update_and_service_bodies_name_what_the_handlers_take(document: dict[str, Any]) -> None:
    def properties(path: str) -> dict[str, Any]:
        body = document["paths"][path]["post"]["requestBody"]
        assert list(body["content"]) == [FORM, JSON]
        return dict(resolve(document, body["content"][FORM]["schema"])["properties"])

    update = properties(V1_ONE)
    assert set(update) == {"Body", "Status"}
    assert (update["Status"]["enum"], update["Body"]["maxLength"]) == (["canceled"], 0)
    for path in (SERVICES, SERVICE):
        fields = properties(path)
        assert set(fields) == set(SERVICE_FIELDS) | set(SERVICE_NO_OP_VALUES)
        for name, harmless in SERVICE_NO_OP_VALUES.items():
            assert str(fields[name]["const"]).lower() == harmless
    assert set(properties(POOL)) == {"PhoneNumberSid"}
    service = resolve(document, document["paths"][SERVICES]["post"]["requestBody"]["content"][
        FORM]["schema"])  # fmt: skip
    assert service["required"] == ["FriendlyName"]


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


def test_rendered_services_and_numbers_have_exactly_the_documented_fields() -> None:
    # given
    now = utcnow()
    service = MessagingService(sid=new_sid("MG"), account_sid=new_sid("AC"), friendly_name="s",
                               date_created=now, date_updated=now)  # fmt: skip
    number = PhoneNumberRow(phone_number="+4915112345678", sid=new_sid("PN"),
                            account_sid=service.account_sid, date_created=now)  # fmt: skip
    member = ServiceNumber(phone_number=number.phone_number, service_sid=service.sid,
                           date_created=now)  # fmt: skip
    rendered = [
        (service_resource(service, "http://127.0.0.1"), Service),
        (number_resource(member, number, "http://127.0.0.1"), ServicePhoneNumber),
        (incoming_number(number, service.sid, "/v1"), IncomingPhoneNumber),
        (incoming_number(number, None, "/2010-04-01"), TwilioIncomingPhoneNumber),
    ]
    for body, model in rendered:
        # then
        assert set(body) == set(model.model_fields), model
        model.model_validate(body)


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
