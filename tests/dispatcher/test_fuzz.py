"""Every operation fuzzed from the OpenAPI document against a live API: no 5xx, and every
status, content type, header and body one the document describes.

Cases come from the document (schema-valid and schema-violating), are sent to the real server
with a test account's credentials or with none, and are checked with schemathesis' own
conformance checks. Schema-valid creates are expected to be refused now and then: the document
cannot say which numbers an account owns, so schemathesis' "valid data is accepted" check is
left out.
"""

import base64
import os

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection

from dispatcher.api.app import create_app
from schemas.settings import get_settings
from tests.api import CONFORMANCE_CHECKS
from tests.processes import Account

# Per operation and credentials: 25 × 17 operations × 2 take about 25 s on two cores, the same
# cases every run. MYCPAAS_TEST_FUZZ_EXAMPLES=2000 runs a long random hunt instead.
EXAMPLES = int(os.environ.get("MYCPAAS_TEST_FUZZ_EXAMPLES", "25"))
CHECKS = [*CONFORMANCE_CHECKS, negative_data_rejection, ignored_auth]

# The document the live server serves is this one (test_openapi.py checks it); reading it here
# names one test per operation.
SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
OPERATIONS = {
    f"{operation.method.upper()} {operation.path}": operation
    for operation in (result.ok() for result in SCHEMA.get_all_operations())
}


def credentials(path: str, account: Account) -> dict[str, str]:
    """The header that authenticates on ``path``: the carrier's token or the account's."""
    if path == "/carrier/receipts":
        return {"Authorization": f"Bearer {get_settings().receipts_token}"}
    basic = base64.b64encode(f"{account.sid}:{account.token}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


@pytest.mark.parametrize("with_credentials", [True, False], ids=["account", "anonymous"])
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_answers_as_documented(
    api_url: str, account: Account, label: str, with_credentials: bool
) -> None:
    # given
    operation = OPERATIONS[label]
    fixed = {"account_sid": account.sid} if "{account_sid}" in operation.path else {}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
    )
    headers = credentials(operation.path, account) if with_credentials else {}

    @given(case=cases)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize="MYCPAAS_TEST_FUZZ_EXAMPLES" not in os.environ,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        # when
        response = case.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS)
        # then (the checks above raise on anything the document does not describe)
        if not with_credentials:
            assert response.status_code == 401, response.text

    answers_as_documented()
