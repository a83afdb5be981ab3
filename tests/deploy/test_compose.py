"""docker-compose.yml, Dockerfile and .env.example: schema-valid, pinned, healthy, non-root."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.deploy.support import REPO

# The compose specification's JSON schema, kept next to the repository (../shared in CI).
SCHEMA_PATH = REPO / "../shared/data/compose-spec/compose-spec.json"
SUBSTITUTION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
SERVICES = {"kafka", "worker", "prometheus", "alertmanager", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def resolve(text: str, values: dict[str, str]) -> str:
    """Compose-style ${VAR:-default} substitution."""
    return SUBSTITUTION.sub(lambda m: values.get(m.group(1)) or m.group(2) or "", text)


def test_compose_validates_against_the_compose_spec(compose):
    import jsonschema

    path = SCHEMA_PATH.resolve()
    assert path.is_file(), (
        f"compose-spec schema not found at {path}: the deploy tests expect the shared data "
        "checkout next to the repository (../shared/data/compose-spec/compose-spec.json)"
    )
    schema = json.loads(path.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_only_real_services(compose):
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize("values", ["defaults", "env.example"])
def test_every_image_is_pinned(compose, values):
    env = {} if values == "defaults" else env_example()
    for name, service in compose["services"].items():
        assert "image" in service, f"{name}: no image (a built service needs a tag too)"
        image = resolve(service["image"], env)
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} is not pinned"


def test_every_variable_has_a_default_and_is_in_env_example(compose):
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    example = env_example()
    for match in SUBSTITUTION.finditer(text):
        assert match.group(2), f"${{{match.group(1)}}} has no default"
        assert match.group(1) in example, f"{match.group(1)} missing from .env.example"
        assert example[match.group(1)] == match.group(2), (
            f"{match.group(1)}: .env.example and the compose default differ"
        )


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_dependencies_wait_for_health(compose):
    for name, service in compose["services"].items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert "kafka" in compose["services"]["worker"]["depends_on"]


def test_worker_is_scalable_and_configured(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["build"]["dockerfile"] == "Dockerfile"
    env = worker["environment"]
    assert env["DOZOR_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert str(env["DOZOR_METRICS_PORT"]) == "9464"
    assert env["DOZOR_PAGES_FILE"] == "/etc/dozor/pages.yaml"
    mounts = [resolve(v, {}) for v in worker["volumes"]]
    assert "./deploy/pages.example.yaml:/etc/dozor/pages.yaml:ro" in mounts
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "dozor-worker")
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert job["dns_sd_configs"][0]["port"] == 9464


def test_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("./", "/", "${")):
                assert source in declared, f"{name}: volume {source} not declared"


def test_mounted_files_exist(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = resolve(volume, {}).split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_dockerfile():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, flags=re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", text, flags=re.MULTILINE)
    assert "pip install ." in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root USER"
    assert re.search(r'^ENTRYPOINT \["dozor"\]$', text, flags=re.MULTILINE)
    assert re.search(r'^CMD \["worker"\]$', text, flags=re.MULTILINE)


def test_dockerignore_keeps_the_model_and_drops_the_venv():
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored and ".env" in ignored
    assert not any(p.startswith("models") for p in ignored)
