"""Fixtures of the API's tests: its live OpenAPI document."""

from typing import Any

import httpx
import pytest


@pytest.fixture(scope="module")
def document(api_url: str) -> dict[str, Any]:
    return httpx.get(f"{api_url}/openapi.json").json()
