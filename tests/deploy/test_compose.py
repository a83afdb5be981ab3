"""docker-compose.yml, Dockerfile and .env.example: schema-valid, pinned, healthy, non-root."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support.deploy import REPO

# The compose specification's JSON schema, kept next to the repository (../shared in CI).
SCHEMA_PATH = REPO / "../shared/data/compose-spec/compose-spec.json"
SUBSTITUTION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
# ${VAR:?message}: compose refuses to start while VAR is unset or empty (no default secret).
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?([^}]*)\}")
REQUIRED_VARIABLES = {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
SERVICES = {"kafka", "worker", "prometheus", "alertmanager", "grafana",
            "postgres", "moderation", "vk-callback", "vk-poll", "telegram"}
DOZOR_SERVICES = {"worker": ["worker"], "moderation": ["moderation"],
                  "vk-callback": ["ingest", "vk-callback"], "vk-poll": ["ingest", "vk-poll"],
                  "telegram": ["ingest", "telegram"]}


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
        # an explicit empty default (${VAR:-}) is a default: the variable is optional
        assert match.group(2) is not None, f"${{{match.group(1)}}} has no default"
        assert match.group(1) in example, f"{match.group(1)} missing from .env.example"
        assert example[match.group(1)] == match.group(2), (
            f"{match.group(1)}: .env.example and the compose default differ"
        )


def test_required_variables_are_secrets_without_default():
    """Only the passwords are required; .env.example names them with an empty value."""
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    required = {m.group(1) for m in REQUIRED.finditer(text)}
    assert required == REQUIRED_VARIABLES
    for match in REQUIRED.finditer(text):
        assert match.group(2).strip(), f"{match.group(1)}: say how to set it"
    example = env_example()
    for name in required:
        assert name in example and example[name] == "", f"{name}: list it in .env.example, empty"


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


def test_dozor_processes_share_the_worker_image(compose):
    """moderation and the connectors run the image the worker builds, each its own command."""
    worker = compose["services"]["worker"]
    for name, command in DOZOR_SERVICES.items():
        service = compose["services"][name]
        assert service["image"] == worker["image"] == "dozor:${DOZOR_VERSION:-0.1.0}", name
        assert service["build"] == worker["build"], name
        assert service["command"] == command, name
        env = service["environment"]
        assert env["DOZOR_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["DOZOR_PAGES_FILE"] == "/etc/dozor/pages.yaml", name
        assert service["depends_on"]["kafka"] == {"condition": "service_healthy"}, name
        assert resolve(service["volumes"][0], {}) == \
            "./deploy/pages.example.yaml:/etc/dozor/pages.yaml:ro", name


def test_postgres_is_pinned_persistent_and_checked(compose):
    postgres = compose["services"]["postgres"]
    image = resolve(postgres["image"], {})
    assert re.fullmatch(r"postgres:16\.\d+-alpine", image), image
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert REQUIRED.fullmatch(postgres["environment"]["POSTGRES_PASSWORD"])
    assert "ports" not in postgres, "the database is for the stack only"


def test_moderation_service(compose):
    moderation = compose["services"]["moderation"]
    env = moderation["environment"]
    url = env["DOZOR_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://dozor:${POSTGRES_PASSWORD:?")
    assert url.endswith("@postgres:5432/dozor")
    assert env["DOZOR_MODERATION_HOST"] == "0.0.0.0" and str(env["DOZOR_MODERATION_PORT"]) == "8080"
    assert resolve(env["DOZOR_MODERATION_COOKIE_SECURE"], {}) == "true"
    assert [resolve(p, {}) for p in moderation["ports"]] == ["127.0.0.1:8080:8080"]
    assert moderation["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "/healthz" in " ".join(moderation["healthcheck"]["test"])
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "dozor-moderation")
    assert job["static_configs"][0]["targets"] == ["moderation:9466"]
    assert str(env["DOZOR_MODERATION_METRICS_PORT"]) == "9466" and "9466" in moderation["expose"]


def test_connectors(compose):
    services = compose["services"]
    callback = services["vk-callback"]
    assert [resolve(p, {}) for p in callback["ports"]] == ["127.0.0.1:8081:8081"]
    assert callback["environment"]["DOZOR_VK_CALLBACK_HOST"] == "0.0.0.0"
    assert str(callback["environment"]["DOZOR_VK_CALLBACK_PORT"]) == "8081"
    for name in ("vk-callback", "vk-poll", "telegram"):
        service = services[name]
        assert str(service["environment"]["DOZOR_INGEST_METRICS_PORT"]) == "9465", name
        assert service["environment"]["DOZOR_SECRETS_FILE"] == "/run/secrets/dozor-secrets"
        assert service["secrets"] == ["dozor-secrets"], name
        assert "9465" in service["expose"], name
    assert "ports" not in services["vk-poll"] and "ports" not in services["telegram"]
    # Telegram: starts with the stack; a clean exit (no token) is not restarted.
    telegram = services["telegram"]
    assert "profiles" not in telegram and telegram["restart"] == "on-failure"
    assert telegram["environment"]["DOZOR_TELEGRAM_BOT_TOKEN"] == "${DOZOR_TELEGRAM_BOT_TOKEN:-}"
    secrets_file = resolve(compose["secrets"]["dozor-secrets"]["file"], {})
    assert (REPO / secrets_file).is_file(), secrets_file
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    assert jobs["dozor-vk-callback"]["static_configs"][0]["targets"] == ["vk-callback:9465"]
    assert jobs["dozor-vk-poll"]["static_configs"][0]["targets"] == ["vk-poll:9465"]
    assert jobs["dozor-telegram"]["dns_sd_configs"][0]["names"] == ["telegram"]
    assert jobs["dozor-telegram"]["dns_sd_configs"][0]["port"] == 9465


def test_example_secrets_name_every_secret_of_the_example_registry():
    """Each vk_secret_env / vk_token_env of pages.example.yaml is in secrets.example.yaml, empty."""
    pages = yaml.safe_load((REPO / "deploy/pages.example.yaml").read_text(encoding="utf-8"))
    secrets = yaml.safe_load((REPO / "deploy/secrets.example.yaml").read_text(encoding="utf-8"))
    named = {page[key] for page in pages["pages"] for key in ("vk_secret_env", "vk_token_env")
             if page.get(key)}
    assert named and named == set(secrets)
    assert all(value == "" for value in secrets.values()), "no real secret in the example"
    assert {page.get("connector") for page in pages["pages"]} >= {"vk-callback", "vk-poll",
                                                                 "telegram"}


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


def test_safer_defaults(compose):
    """Issue 18: no lifecycle API, a required Grafana password, ports on 127.0.0.1 by default."""
    services = compose["services"]
    assert not any("enable-lifecycle" in arg for arg in services["prometheus"]["command"])
    assert REQUIRED.fullmatch(services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"])
    for name, service in services.items():
        for port in service.get("ports", []):
            # Prometheus and Alertmanager have no login: their own address, local by default.
            variable = "MONITORING_BIND_ADDRESS" if name in ("prometheus", "alertmanager") \
                else "BIND_ADDRESS"
            assert port.startswith("${%s:-127.0.0.1}:" % variable), f"{name}: {port}"
