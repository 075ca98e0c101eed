"""docker-compose.yml is valid Compose Spec, the format `docker compose` v2 reads (this machine has
Debian's docker-compose 1.29 only, which the stack test runs). compose-spec.json is the
specification's own schema (github.com/compose-spec/compose-spec, schema/compose-spec.json at
170098ba, Apache-2.0), kept beside this test since no network is reached from here."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).with_name("compose-spec.json")).read_text())


def problems(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_is_valid_compose_spec() -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert problems(document) == []
    # The profiles and conditions v2 reads the same way as 1.29.
    services = document["services"]
    assert services["gpt-oss"]["profiles"] == ["gpu"]
    assert services["gpt-oss-cpu"]["profiles"] == ["cpu"]
    assert services["orchestrator"]["depends_on"]["secrets-init"] == {
        "condition": "service_completed_successfully"
    }


def test_the_schema_check_finds_a_mistake() -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken = copy.deepcopy(document)
    broken["services"]["orchestrator"]["group_ad"] = ["0"]  # a misspelt key
    broken["services"]["mcp-hub"]["depends_on"]["secrets-init"]["condition"] = "service_done"
    found = problems(broken)
    assert any("group_ad" in p for p in found), found
    assert any("service_done" in p for p in found), found
