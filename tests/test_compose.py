"""docker-compose.yml (the scaled shape) and .env.example, checked without Docker.

No Docker engine runs here, so these tests read the files: the web and worker services must
get the same, complete application environment, every Druid JVM (peons included) must know
its AWS region, and .env.example and README's configuration table must list exactly the
variables the code reads.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from sales_analytics.envvars import SCALED_SHAPE_REQUIRED

ROOT = Path(__file__).resolve().parent.parent

SETTINGS_READ = re.compile(r'\benv(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"')
SHELL_READ_WITH_DEFAULT = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-")
SHELL_REFERENCE = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")
PYTHON_ENVIRON_READ = re.compile(
    r'os\.(?:environ\.get|getenv)\(\s*"([A-Z][A-Z0-9_]*)"|os\.environ\[\s*"([A-Z][A-Z0-9_]*)"\s*\]'
)
# `NAME=value`, commented out or not; prose comments never start with `NAME=`.
ENV_EXAMPLE_ENTRY = re.compile(r"^(?:#\s?)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)

# The release the tests run against (make services builds it from Maven Central's jars).
DRUID_VERSION = re.search(
    r"<druid.version>([^<]+)</druid.version>", (ROOT / "services" / "druid" / "pom.xml").read_text()
).group(1)
DRUID_IMAGE = f"apache/druid:{DRUID_VERSION}"
DRUID_PROCESSES = {"coordinator", "broker", "historical", "middleManager", "router"}
AWS_REGION_PROPERTY = "-Daws.region=us-east-1"
SECRET_VARIABLES = ("SECRET_KEY", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
# Secrets of the containers themselves (databases, object store), besides the app's own.
COMPOSE_SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "DRUID_DB_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
COMPOSE_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:?[-?+]?)([^}]*)\}")


def settings_variables() -> set[str]:
    return set(SETTINGS_READ.findall((ROOT / "sales_analytics" / "settings.py").read_text()))


def run_local_variables() -> set[str]:
    """Variables bin/run-local takes from the environment (`${NAME:-default}`)."""
    return set(SHELL_READ_WITH_DEFAULT.findall((ROOT / "bin" / "run-local").read_text()))


def app_code_environ_variables() -> set[str]:
    """Variables read from os.environ outside the settings (e.g. management commands)."""
    packages = [path for path in ROOT.iterdir() if (path / "__init__.py").exists() and path.name != "tests"]
    names: set[str] = set()
    for package in packages:
        for source in package.rglob("*.py"):
            for get_name, item_name in PYTHON_ENVIRON_READ.findall(source.read_text()):
                names.add(get_name or item_name)
    return names


def variables_the_code_reads() -> set[str]:
    return settings_variables() | run_local_variables() | app_code_environ_variables()


def variables_the_code_mentions() -> set[str]:
    """What the code reads, plus what bin/run-local only passes on (VAR_DIR, Q_WORKERS…)."""
    run_local = set(SHELL_REFERENCE.findall((ROOT / "bin" / "run-local").read_text()))
    return settings_variables() | run_local | app_code_environ_variables()


def env_example_variables() -> list[str]:
    return ENV_EXAMPLE_ENTRY.findall((ROOT / ".env.example").read_text())


def readme_configuration_variables() -> set[str]:
    """Variables named in the first column of the tables under README's "## Configuration"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def druid_services(services) -> dict[str, dict]:
    return {name: service for name, service in services.items() if service.get("image", "").startswith("apache/druid")}


def test_the_regexes_find_what_the_code_reads():
    # Guards the guards: an empty set would make the .env.example checks pass vacuously.
    assert {"SECRET_KEY", "DATABASE_URL", "DEBUG", "ALLOWED_HOSTS", "S3_BUCKET"} <= settings_variables()
    assert {"PORT", "WEB_WORKERS", "WEB_THREADS", "WEB_TIMEOUT", "DJANGO_SUPERUSER_USERNAME"} <= run_local_variables()
    assert "DJANGO_SUPERUSER_EMAIL" in app_code_environ_variables()


def test_scaled_shape_requirements_are_variables_the_settings_read():
    assert SCALED_SHAPE_REQUIRED
    assert set(SCALED_SHAPE_REQUIRED) <= settings_variables()


@pytest.mark.parametrize("service_name", ["web", "worker"])
def test_app_services_set_every_scaled_shape_variable(services, service_name):
    environment = services[service_name]["environment"]
    missing = [name for name in SCALED_SHAPE_REQUIRED if not str(environment.get(name) or "").strip()]
    assert not missing, f"{service_name} does not set {missing}"


def test_web_and_worker_have_identical_app_environments(services):
    assert services["web"]["environment"] == services["worker"]["environment"]


def test_app_environment_uses_only_variables_the_settings_read(services):
    unknown = set(services["web"]["environment"]) - settings_variables()
    assert not unknown, f"the settings never read {sorted(unknown)}"


def test_app_environment_selects_the_scaled_integrations(services):
    environment = services["web"]["environment"]
    assert environment["ANALYTICS_ENGINE"] == "druid"
    assert environment["LOG_FORMAT"] == "json"
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert environment["S3_ADDRESSING_STYLE"] == "path"
    assert environment["REDIS_URL"].startswith("redis://redis:")
    assert environment["DRUID_ROUTER_URL"] == "http://router:8888"


def test_no_secret_is_written_into_the_compose_file(services, druid_services):
    environment = services["web"]["environment"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?.+\}", environment["SECRET_KEY"]), "SECRET_KEY must be required, not given"
    for name in SECRET_VARIABLES:
        assert environment[name].startswith("${"), f"{name} must come from the environment"
    for name, service in druid_services.items():
        for key in ("druid_s3_accessKey", "druid_s3_secretKey", "druid_metadata_storage_connector_password"):
            assert service["environment"][key].startswith("${"), f"{name}: {key} must come from the environment"


def test_every_secret_is_required_never_defaulted():
    """Compose refuses to start without each secret, instead of running with a well-known password."""
    text = (ROOT / "docker-compose.yml").read_text()
    references = [match for match in COMPOSE_REFERENCE.findall(text) if match[0] in COMPOSE_SECRETS]
    assert {name for name, _, _ in references} == set(COMPOSE_SECRETS)
    for name, operator, message in references:
        assert operator == ":?" and message.startswith(f"set {name}"), f"${{{name}{operator}{message}}}"
    assert "dev-only" not in text


def test_app_services_run_the_web_server_and_the_worker(services):
    assert services["web"]["command"][:2] == ["gunicorn", "sales_analytics.wsgi:application"]
    assert services["worker"]["command"] == ["python", "manage.py", "qcluster"]
    for name in ("web", "worker"):
        assert services[name]["build"] == "."
        # Replicas never race each other to migrate: a one-shot job does it before they start.
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "migrate" in "\n".join(services["migrate"]["command"])


def test_dockerfile_installs_with_the_constraints_and_collects_static():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "pip install -c requirements/constraints.txt -e ." in dockerfile
    assert "manage.py collectstatic" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE), "the app must not run as root"


def test_supporting_services_exist(services):
    assert services["postgres"]["image"] == "postgres:16"
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["minio-setup"]["image"].startswith("minio/mc")
    assert "mc mb" in "\n".join(services["minio-setup"]["command"])
    assert services["redis"]["image"].startswith("redis")
    assert services["zookeeper"]["image"].startswith("zookeeper")


def test_druid_cluster_has_every_process_from_the_official_image(druid_services):
    processes = {service["command"][0] for service in druid_services.values()}
    assert processes == DRUID_PROCESSES
    assert {service["image"] for service in druid_services.values()} == {DRUID_IMAGE}


@pytest.mark.parametrize("process", sorted(DRUID_PROCESSES))
def test_every_druid_jvm_knows_its_aws_region(druid_services, process):
    (environment,) = [s["environment"] for s in druid_services.values() if s["command"][0] == process]
    assert environment["AWS_REGION"] == "us-east-1"
    assert AWS_REGION_PROPERTY in environment["JAVA_OPTS"].split()
    if process == "middleManager":
        # Peons are separate JVMs started with these options only.
        peon_options = json.loads(environment["druid_indexer_runner_javaOptsArray"])
        assert AWS_REGION_PROPERTY in peon_options


@pytest.mark.parametrize("process", sorted(DRUID_PROCESSES))
def test_druid_uses_postgres_metadata_and_s3_deep_storage_in_minio(druid_services, process):
    (environment,) = [s["environment"] for s in druid_services.values() if s["command"][0] == process]
    extensions = json.loads(environment["druid_extensions_loadList"])
    assert {"druid-s3-extensions", "postgresql-metadata-storage", "druid-multi-stage-query"} <= set(extensions)
    assert environment["druid_zk_service_host"] == "zookeeper"
    assert environment["druid_metadata_storage_type"] == "postgresql"
    assert environment["druid_metadata_storage_connector_connectURI"].startswith("jdbc:postgresql://postgres:5432/")
    assert environment["druid_storage_type"] == "s3"
    assert environment["druid_s3_endpoint_url"] == "http://minio:9000"
    assert environment["druid_s3_enablePathStyleAccess"] == "true"
    assert environment["druid_s3_endpoint_signingRegion"] == "us-east-1"
    assert environment["druid_storage_bucket"] == environment["druid_indexer_logs_s3Bucket"]


def test_druid_coordinator_runs_the_overlord_and_middlemanager_has_task_slots(druid_services):
    by_process = {service["command"][0]: service["environment"] for service in druid_services.values()}
    assert by_process["coordinator"]["druid_coordinator_asOverlord_enabled"] == "true"
    # Multi-stage-query ingestion needs a controller task and at least one worker task.
    assert int(by_process["middleManager"]["druid_worker_capacity"]) >= 2


def test_env_example_lists_every_variable_the_code_reads():
    missing = variables_the_code_reads() - set(env_example_variables())
    assert not missing, f".env.example does not list {sorted(missing)}"


def test_env_example_lists_only_variables_the_code_reads():
    unknown = set(env_example_variables()) - variables_the_code_mentions()
    assert not unknown, f".env.example lists {sorted(unknown)}, which no code reads"


def test_env_example_lists_each_variable_once_with_a_comment_and_no_secret():
    lines = (ROOT / ".env.example").read_text().splitlines()
    names = env_example_variables()
    assert len(names) == len(set(names)), "a variable is listed twice"
    for index, line in enumerate(lines):
        entry = ENV_EXAMPLE_ENTRY.match(line)
        if not entry:
            continue
        above = lines[index - 1]
        assert above.startswith("#") and not ENV_EXAMPLE_ENTRY.match(above), f"{entry.group(1)} has no comment above it"
        if entry.group(1) in (*SECRET_VARIABLES, "DJANGO_SUPERUSER_PASSWORD"):
            assert line.rstrip().endswith("="), f"{entry.group(1)} must be left empty"


def test_readme_configuration_table_lists_every_variable_the_code_reads():
    missing = variables_the_code_reads() - readme_configuration_variables()
    assert not missing, f"README's configuration table does not list {sorted(missing)}"


def test_readme_configuration_table_lists_only_variables_the_code_reads():
    unknown = readme_configuration_variables() - variables_the_code_mentions()
    assert not unknown, f"README's configuration table lists {sorted(unknown)}, which no code reads"


def test_every_published_port_is_on_loopback(services):
    # web:8000 was published on every interface: anyone reaching it directly bypassed the load balancer.
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert "web" in published
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_x_forwarded_for_is_trusted_only_when_asked(services):
    assert services["web"]["environment"]["TRUSTED_PROXY_COUNT"] == "${TRUSTED_PROXY_COUNT:-0}"


def test_the_migrate_job_installs_the_recurring_tasks(services):
    # Without it the scaled shape never evaluated alerts hourly, retried notifications, failed
    # tasks of lost workers or swept files: only `make run` installed the schedules.
    commands = [line.strip() for line in "\n".join(services["migrate"]["command"]).splitlines()]
    assert "python manage.py install_schedules" in commands
    assert commands.index("python manage.py install_schedules") > commands.index("python manage.py migrate --no-input")


def test_alert_email_settings_are_passed_through_with_the_settings_defaults(services):
    environment = services["web"]["environment"]
    assert environment["EMAIL_URL"] == "${EMAIL_URL:-consolemail://}"
    assert environment["DEFAULT_FROM_EMAIL"] == "${DEFAULT_FROM_EMAIL:-alerts@localhost}"


# gunicorn's longest request line; its default (4094) answered a page or API call filtered by ~150
# values with its own HTML "414 Request Line is too large".
GUNICORN_REQUEST_LINE = re.compile(r"--limit-request-line[= \"',\n]+8190\b")


@pytest.mark.parametrize("path", ["bin/run-local", "Dockerfile", "bench/ingest.py"])
def test_every_gunicorn_start_takes_the_longest_request_line(path: str) -> None:
    text = (ROOT / path).read_text()
    assert "gunicorn" in text
    assert GUNICORN_REQUEST_LINE.search(text), f"{path} starts gunicorn without --limit-request-line 8190"


def test_the_compose_web_service_takes_the_longest_request_line(services) -> None:
    assert "--limit-request-line=8190" in services["web"]["command"]
