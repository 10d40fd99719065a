"""The API as its tests address it: the paths as its OpenAPI document names them, the media
types it takes, and the schemathesis checks that its answers conform to the document."""

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

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
CONFORMANCE_CHECKS = [  # what every answer of the API must pass; test_fuzz.py adds its own
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
