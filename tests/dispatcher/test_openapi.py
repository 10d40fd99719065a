"""The OpenAPI document says what the API really takes and answers: parameters, statuses,
credentials and the fields of what it renders."""

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from dispatcher.api.app import create_app
from dispatcher.api.messages.listing import LIST_PARAMS
from dispatcher.api.messages.representation import Media, Message, TwilioMedia, TwilioMessage
from dispatcher.api.numbers.representation import IncomingPhoneNumber, TwilioIncomingPhoneNumber
from dispatcher.api.numbers.routes import LIST_PARAMS as NUMBER_LIST_PARAMS
from dispatcher.api.render import incoming_number, media_item, twilio_message, v1_message
from dispatcher.api.services.representation import Service, ServicePhoneNumber
from dispatcher.api.services.routes import number_resource, service_resource
from dispatcher.intake.create import CREATE_PARAMS, IGNORED_PARAMS, NO_OP_VALUES, REFUSED_PARAMS
from dispatcher.intake.services import FIELDS as SERVICE_FIELDS
from dispatcher.intake.services import NO_OP_VALUES as SERVICE_NO_OP_VALUES
from schemas.ids import new_sid
from schemas.models import Media as MediaRow
from schemas.models import Message as MessageRow
from schemas.models import MessagingService, ServiceNumber
from schemas.models import PhoneNumber as PhoneNumberRow
from schemas.types import utcnow
from tests.api import (
    CREATES,
    FORM,
    JSON,
    NUMBERS,
    POOL,
    POOL_ONE,
    SERVICE,
    SERVICES,
    V1,
    V1_MEDIA_ONE,
    V1_ONE,
)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


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
    ("post", "/carrier/inbound"): {"200", "400", "401", "413", "415", "503"},
    ("post", f"{NUMBERS}/{{sid}}"): {"200", "400", "401", "404", "413", "415", "503"},
    ("get", "/v1/Accounts/{account_sid}/OptOuts"): {"200", "400", "401", "404", "503"},
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
        expected = "carrierBearer" if path.startswith("/carrier/") else "accountBasic"
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
