"""Renders deploy/kubernetes as `kubectl kustomize` does, for the validators and the tests.

Our machines have no kustomize: this knows the few fields the kustomization uses (resources,
configMapGenerator with envs and files, images) and refuses any other, so it cannot quietly
render something else than kustomize would. Generated ConfigMaps are named with kustomize's
content hash, and the Deployment's references to them are renamed to match.

    python tests/render_kustomization.py deploy/kubernetes > kubernetes.yaml
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "configMapGenerator", "images"}
GENERATOR_FIELDS = {"name", "envs", "files", "options"}
IMAGE_FIELDS = {"name", "newName", "newTag", "digest"}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render(directory: Path) -> list[Resource]:
    """Every resource of the kustomization in `directory`: generated ConfigMaps first."""
    kustomization: Resource = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise ValueError(f"kustomization.yaml: fields this renderer does not know: {unknown}")
    specs = kustomization.get("configMapGenerator", [])
    generated = [config_map(directory, spec) for spec in specs]
    renamed = {
        spec["name"]: cm["metadata"]["name"] for spec, cm in zip(specs, generated, strict=True)
    }
    images = kustomization.get("images", [])
    for image in images:
        if set(image) - IMAGE_FIELDS:
            raise ValueError(f"images: fields not known here: {set(image) - IMAGE_FIELDS}")
    resources: list[Resource] = []
    for name in kustomization.get("resources", []):
        resources.extend(doc for doc in yaml.safe_load_all((directory / name).read_text()) if doc)
    for resource in resources:
        pod = resource.get("spec", {}).get("template", {}).get("spec")
        if pod is not None:
            rename_config_maps(pod, renamed)
            set_images(pod, images)
    return [*generated, *resources]


def config_map(directory: Path, spec: Resource) -> Resource:
    unknown = (set(spec) - GENERATOR_FIELDS) | (set(spec.get("options", {})) - {"labels"})
    if unknown:
        raise ValueError(f"configMapGenerator {spec['name']}: fields not known here: {unknown}")
    data: dict[str, str] = {}
    for env in spec.get("envs", []):
        data.update(env_file((directory / env).read_text()))
    for file in spec.get("files", []):
        data[Path(file).name] = (directory / file).read_text()
    metadata: Resource = {"name": f"{spec['name']}-{content_hash(data)}"}
    if "labels" in spec.get("options", {}):
        metadata["labels"] = spec["options"]["labels"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def env_file(text: str) -> dict[str, str]:
    """kustomize's env file: NAME=value lines (the value as written), blanks and # comments."""
    pairs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not ENV_NAME.match(name):
            # Without `=`, kustomize would read the value from its own environment.
            raise ValueError(f"line {number}: not NAME=value: {raw!r}")
        pairs[name] = value
    return pairs


def content_hash(data: dict[str, str]) -> str:
    """kustomize's ConfigMap name suffix: SHA-256 of Go's JSON of {data, kind, name}, its first
    ten hex digits with 0, 1, 3, a and e replaced (no words). The name is empty: kustomize
    looks it up as the single key "metadata/name", which no ConfigMap has."""
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)  # as Go's json.Marshal does
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def rename_config_maps(pod: Resource, renamed: dict[str, str]) -> None:
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for source in container.get("envFrom", []):
            reference = source.get("configMapRef")
            if reference:
                reference["name"] = renamed.get(reference["name"], reference["name"])
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("configMapKeyRef")
            if reference:
                reference["name"] = renamed.get(reference["name"], reference["name"])
    for volume in pod.get("volumes", []):
        reference = volume.get("configMap")
        if reference:
            reference["name"] = renamed.get(reference["name"], reference["name"])


def set_images(pod: Resource, images: list[Resource]) -> None:
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        name, tag = split_image(container["image"])
        for image in images:
            if image["name"] == name:
                new_name = image.get("newName", name)
                if "digest" in image:
                    container["image"] = f"{new_name}@{image['digest']}"
                else:
                    tag = image.get("newTag", tag)
                    container["image"] = f"{new_name}:{tag}" if tag else new_name


def split_image(image: str) -> tuple[str, str | None]:
    """`registry:5000/name:tag@sha256:...` as (`registry:5000/name`, `tag`)."""
    name = image.split("@", 1)[0]
    base, colon, tag = name.rpartition(":")
    return (base, tag) if colon and "/" not in tag else (name, None)


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("deploy/kubernetes")
    sys.stdout.write(yaml.safe_dump_all(render(directory), sort_keys=False))


if __name__ == "__main__":
    main()
