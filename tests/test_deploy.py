"""The deploy files say what the service expects: probes, settings it knows, a valid configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from teleconsult.configuration.service_config import parse_config
from teleconsult.configuration.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
README = (DEPLOY.parent / "README.md").read_text()


def manifest(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "kubernetes" / name).read_text())
    return loaded


def test_the_deployment_probes_and_limits() -> None:
    deployment = manifest("deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert set(container["resources"]) == {"requests", "limits"}
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    configured = manifest("configmap.yaml")["data"]
    assert int(configured["SHUTDOWN_GRACE_MS"]) < grace * 1000


def test_every_configured_variable_is_a_documented_one() -> None:
    data = manifest("configmap.yaml")["data"]
    secret = manifest("secret.yaml")["stringData"]
    variables = [name for name in [*data, *secret] if name != "service-config.json"]
    for name in variables:
        assert f"| `{name}` |" in README, name
    settings = Settings.from_environ({**data, **secret})
    assert settings.http_host == "0.0.0.0"  # noqa: S104 - listening inside a pod


def test_the_configmap_holds_a_valid_service_configuration() -> None:
    document = json.loads(manifest("configmap.yaml")["data"]["service-config.json"])
    config = parse_config(document, "configmap service-config.json")
    assert config.privileges.plus.groups == frozenset({"doctor"})


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(manifest("kustomization.yaml")["resources"])
    present = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert manifest("poddisruptionbudget.yaml")["spec"]["minAvailable"] >= 1


def test_the_compose_file_starts_mongodb_with_a_healthcheck() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert "healthcheck" in compose["services"]["mongo"]
    assert compose["services"]["teleconsult"]["environment"]["STORE_URL"].startswith("mongodb://")
