"""The deploy files say what the service expects and are safe as shipped: probes that outwait
the store, a disruption budget that lets drains through, only the gateway let in, no
service-account token, settings that roll the pods when they change, placeholder secrets that
cannot work, a numeric image user, and a build context of only what the image is built from."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from teleconsult.configuration.service_config import parse_config
from teleconsult.configuration.settings import Settings
from teleconsult.errors import ConfigurationError
from teleconsult.store import check_store_url
from tests.helpers import MakeClient
from tests.render_kustomization import content_hash, env_file, render

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCS = ROOT / "docs"
SETTINGS_PAGE = (DOCS / "settings.md").read_text()
OPERATIONS = (DOCS / "operations.md").read_text()
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
RENDERED = render(KUBERNETES)


def manifest(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((KUBERNETES / name).read_text())
    return loaded


def rendered(kind: str) -> list[dict[str, Any]]:
    return [resource for resource in RENDERED if resource["kind"] == kind]


def settings_file() -> dict[str, str]:
    return env_file((KUBERNETES / "settings.env").read_text())


def secret() -> dict[str, str]:
    data: dict[str, str] = manifest("secret.yaml")["stringData"]
    return data


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifest("deployment.yaml")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    [only] = pod_spec()["containers"]
    assert isinstance(only, dict)
    return only


def test_the_deployment_probes_and_limits() -> None:
    assert container()["livenessProbe"]["httpGet"]["path"] == "/-/healthz"
    assert container()["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert set(container()["resources"]) == {"requests", "limits"}
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert int(settings_file()["SHUTDOWN_GRACE_MS"]) < grace * 1000


def test_the_probes_wait_longer_than_a_store_call() -> None:
    # /-/ready pings the store, which waits up to MONGODB_TIMEOUT_MS for a server: a probe
    # that gave up sooner would take a slow MongoDB for a dead pod.
    store_timeout_ms = Settings.from_environ(settings_file()).store.mongodb_timeout_ms
    assert store_timeout_ms == 5000
    for probe in ("livenessProbe", "readinessProbe"):
        assert container()[probe]["timeoutSeconds"] * 1000 > store_timeout_ms, probe


def disruptions_allowed(budget: dict[str, Any], healthy_replicas: int) -> int:
    """What the eviction API allows with every replica healthy (whole numbers only)."""
    desired_healthy: int = (
        healthy_replicas - budget["maxUnavailable"]
        if "maxUnavailable" in budget
        else budget["minAvailable"]
    )
    return max(0, healthy_replicas - desired_healthy)


def test_the_disruption_budget_lets_a_drain_through_at_two_replicas() -> None:
    budget = manifest("poddisruptionbudget.yaml")["spec"]
    assert disruptions_allowed(budget, 2) == 1
    assert disruptions_allowed(budget, 3) == 1
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["selector"] == manifest("deployment.yaml")["spec"]["selector"]


def test_only_the_gateway_namespace_may_call_the_pods_on_the_service_port() -> None:
    policy = manifest("networkpolicy.yaml")["spec"]
    pod_labels = manifest("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    [service_port] = manifest("service.yaml")["spec"]["ports"]
    assert rule["ports"] == [{"protocol": "TCP", "port": service_port["targetPort"]}]
    assert container()["ports"] == [{"name": service_port["targetPort"], "containerPort": 3000}]


def test_the_pods_run_without_a_token_or_privileges() -> None:
    assert pod_spec()["automountServiceAccountToken"] is False
    assert pod_spec()["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container()["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    mounts = {mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 - the pod's own emptyDir


def test_the_kustomization_lists_every_file_beside_it() -> None:
    kustomization = manifest("kustomization.yaml")
    generated = [
        name
        for generator in kustomization["configMapGenerator"]
        for name in [*generator.get("envs", []), *generator.get("files", [])]
    ]
    present = {path.name for path in KUBERNETES.iterdir()} - {"kustomization.yaml"}
    assert sorted([*kustomization["resources"], *generated]) == sorted(present)


def test_the_pods_use_the_generated_config_maps() -> None:
    settings_map, config_map = rendered("ConfigMap")
    assert settings_map["data"] == settings_file()
    assert config_map["data"] == {
        "service-config.json": (KUBERNETES / "service-config.json").read_text()
    }
    [deployment] = rendered("Deployment")
    [pod_container] = deployment["spec"]["template"]["spec"]["containers"]
    assert pod_container["envFrom"][0] == {
        "configMapRef": {"name": settings_map["metadata"]["name"]}
    }
    [config_volume] = [
        volume
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
        if "configMap" in volume
    ]
    assert config_volume["configMap"] == {"name": config_map["metadata"]["name"]}


def test_a_changed_setting_renames_its_config_map_so_the_pods_roll(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    settings = copy / "settings.env"
    settings.write_text(settings.read_text().replace("LOG_LEVEL=info", "LOG_LEVEL=debug"))
    before = rendered("ConfigMap")[0]["metadata"]["name"]
    resources = render(copy)
    after = resources[0]["metadata"]["name"]
    assert before.startswith("teleconsult-settings-")
    assert after.startswith("teleconsult-settings-")
    assert before != after
    [deployment] = [resource for resource in resources if resource["kind"] == "Deployment"]
    [pod_container] = deployment["spec"]["template"]["spec"]["containers"]
    assert pod_container["envFrom"][0] == {"configMapRef": {"name": after}}


def test_config_maps_are_named_as_kustomize_names_them() -> None:
    # The suffixes `kubectl kustomize` (kustomize v5.5.0) gave these contents.
    assert content_hash({"A": "1"}) == "89g4tffbfk"
    data = {"A": "1 & <b> é", "B": "x=y", "f.json": '{"k": "<&>"}\n'}
    assert content_hash(data) == "t656t2tgdt"


def test_every_configured_variable_is_a_documented_one() -> None:
    variables = [*settings_file(), *secret()]
    for name in variables:
        assert f"| `{name}` |" in SETTINGS_PAGE, name
    settings = Settings.from_environ({**settings_file(), **secret()})
    assert settings.http.host == "0.0.0.0"  # noqa: S104 - listening inside a pod
    assert settings.tokens.verifies
    assert settings.access.allow_anonymous_writes is False


async def test_the_example_verifies_tokens_as_shipped(make_client: MakeClient) -> None:
    # As shipped, but on the fake provider, with a local store and the configuration given here.
    elsewhere = {
        "HTTP_HOST",
        "HTTP_PORT",
        "BANDYER_BASE_URL",
        "TELECONSULTATION_SERVICE_CONFIG_PATH",
    }
    environ = {name: value for name, value in settings_file().items() if name not in elsewhere}
    config = json.loads((KUBERNETES / "service-config.json").read_text())
    client = await make_client(config, **{**environ, "VIDEO_PROVIDER": "fake"})
    answer = await client.get("/teleconsultation/some-room", headers={"miauserid": "someone"})
    assert answer.status == 401
    assert (await client.get("/-/ready")).status == 200


def test_the_service_configuration_is_valid() -> None:
    document = json.loads((KUBERNETES / "service-config.json").read_text())
    config = parse_config(document, "service-config.json")
    assert config.privileges.plus.groups == frozenset({"doctor"})


def test_every_secret_value_is_the_placeholder_that_never_works() -> None:
    assert "data" not in manifest("secret.yaml")
    assert secret() == {"STORE_URL": "CHANGE_ME", "BANDYER_API_SECRET_KEY": "CHANGE_ME"}
    with pytest.raises(ConfigurationError, match="STORE_URL"):
        check_store_url(secret()["STORE_URL"])


def test_the_image_is_named_by_the_kustomization() -> None:
    [image] = manifest("kustomization.yaml")["images"]
    assert container()["image"] == image["name"]
    [deployment] = rendered("Deployment")
    [pod_container] = deployment["spec"]["template"]["spec"]["containers"]
    assert pod_container["image"] == f"{image['newName']}:{image['newTag']}"
    assert "@sha256:" in OPERATIONS
    assert "docker buildx imagetools inspect" in OPERATIONS
    assert "crane digest" in OPERATIONS


def dockerfile_instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{name} ")]


def test_the_image_runs_as_the_numeric_user_the_pods_expect() -> None:
    assert dockerfile_instructions("USER") == ["10001:10001"]
    security = pod_spec()["securityContext"]
    assert f"{security['runAsUser']}:{security['runAsGroup']}" == "10001:10001"


def test_the_image_checks_its_health_without_a_shell() -> None:
    [healthcheck] = dockerfile_instructions("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/-/healthz" in command[2]


def test_the_base_image_is_pinned_by_version_and_digest() -> None:
    [base] = dockerfile_instructions("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base)


def dockerignore_pattern(pattern: str) -> re.Pattern[str]:
    regex, rest = "", pattern
    while rest:
        if rest.startswith("**/"):
            regex, rest = regex + "(?:.*/)?", rest[3:]
        elif rest.startswith("*"):
            regex, rest = regex + "[^/]*", rest[1:]
        else:
            regex, rest = regex + re.escape(rest[0]), rest[1:]
    return re.compile(regex)


def sent_to_the_build(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path, or a folder above it, decides."""
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    sent = True
    for pattern in patterns:
        regex = dockerignore_pattern(pattern.removeprefix("!").rstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            sent = pattern.startswith("!")
    return sent


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    exceptions = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {source for copy in dockerfile_instructions("COPY") for source in copy.split()[:-1]}
    assert exceptions == copied == {"pyproject.toml", "README.md", "teleconsult", "plugins"}
    for path in [
        "pyproject.toml",
        "README.md",
        "teleconsult/app.py",
        "plugins/teleconsult_fake/__init__.py",
    ]:
        assert sent_to_the_build(path), path
    for path in [
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        "deploy/.env",
        "deploy/kubernetes/secret.yaml",
        "tests/test_deploy.py",
        "build/kubernetes.yaml",
        "teleconsult.db",
        "teleconsult/__pycache__/app.cpython-311.pyc",
        "plugins/teleconsult_fake/__pycache__/x.pyc",
        "teleconsult.egg-info/PKG-INFO",
    ]:
        assert not sent_to_the_build(path), path


def test_the_shipped_packages_hold_no_test_fake() -> None:
    """The vendors' stand-ins live in tests/fakes/, which the image never copies: no shipped
    module is one, or imports the tests (so `teleconsult provider-check` runs without them)."""
    shipped = [*(ROOT / "teleconsult").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    assert [path.name for path in shipped if "fake_" in path.name] == []
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "tests" for name in names), path
    assert not sent_to_the_build("tests/fakes/kaleyra.py")


def test_the_compose_file_starts_mongodb_with_a_healthcheck() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert "healthcheck" in compose["services"]["mongo"]
    assert compose["services"]["teleconsult"]["environment"]["STORE_URL"].startswith("mongodb://")


def test_the_compose_file_passes_the_kaleyra_key_through_from_env() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    environment = compose["services"]["teleconsult"]["environment"]
    assert environment["BANDYER_API_SECRET_KEY"] == "${BANDYER_API_SECRET_KEY:-}"
    assert environment["BANDYER_BASE_URL"] == "${BANDYER_BASE_URL:-}"
    assert environment["VIDEO_PROVIDER"] == "${VIDEO_PROVIDER:-}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
