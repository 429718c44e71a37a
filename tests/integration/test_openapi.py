"""`GET /api/v1/openapi.json`: a valid OpenAPI 3.1 document, generated from the handlers' models, that
the running API keeps to: schemathesis (its CLI, in a subprocess) sends generated requests, valid and
invalid, to the whole `rarewatch run` application and checks for no 5xx and schema-conforming answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from xml.etree import ElementTree

from openapi_spec_validator import validate

from rarewatch.api_models import AlertsResponse, MatchRequest
from rarewatch.app import build_web_app
from rarewatch.models import Severity
from tests.integration.api_support import (
    READ,
    READ_TOKEN,
    WRITE_TOKEN,
    alert,
    api_settings,
    call,
    fill,
    served,
)

# The operations that change state are left out: schemathesis would poll sources and retry deliveries.
WRITES = ("pollSource", "retryOutbox", "retryAlert", "purgeOutbox", "createSilence", "expireSilence")


async def test_the_document_is_valid_openapi_31_from_the_models(tmp_path: Path) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, doc, _ = await call("GET", f"{base}/api/v1/openapi.json")
    assert status == 200
    validate(doc)  # raises on an invalid document
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    generated = AlertsResponse.model_json_schema(mode="serialization")
    assert schemas["AlertsResponse"]["properties"].keys() == generated["properties"].keys()
    assert (
        schemas["MatchRequest"]["properties"].keys() == MatchRequest.model_json_schema()["properties"].keys()
    )
    get_ops = {path for path, ops in doc["paths"].items() if "get" in ops}
    assert {"/api/v1/sources", "/api/v1/alerts", "/api/v1/rules", "/api/v1/outbox"} <= get_ops
    assert {"/api/v1/silences", "/api/v1/items"} <= get_ops
    assert "post" in doc["paths"]["/api/v1/backtest"] and "post" in doc["paths"]["/api/v1/silences"]


async def test_schemathesis_finds_no_5xx_and_no_nonconforming_response(tmp_path: Path) -> None:
    await fill(
        tmp_path / "state.db",
        [
            alert(0, materials=["gallium"], countries=["china"], title="稀土出口管制"),
            alert(1, category="supply-disruption", severity=Severity.MEDIUM),
        ],
        destinations=["oldhook"],
    )
    app = build_web_app(api_settings(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN))
    async with served(app) as base:
        excluded = [arg for op in WRITES for arg in ("--exclude-operation-id", op)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{base}/api/v1/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--header",
            f"Authorization: {READ['Authorization']}",
            "--max-examples",
            "30",
            "--seed",
            "11",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            *excluded,
            "--report",
            "junit",
            "--report-junit-path",
            str(tmp_path / "junit.xml"),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=540)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    cases = {case.get("name") for case in ElementTree.parse(tmp_path / "junit.xml").iter("testcase")}
    tested = {"GET /api/v1/sources", "GET /api/v1/alerts", "GET /api/v1/rules", "GET /api/v1/outbox"}
    more = {"GET /api/v1/silences", "GET /api/v1/items", "POST /api/v1/backtest"}
    assert tested | more | {"POST /api/v1/match"} <= cases, cases
