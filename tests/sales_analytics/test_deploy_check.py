"""`manage.py check --deploy` passes with the scaled shape's variables, without reaching any service.

Runs in a subprocess because the settings are read once, at import, from the environment.
"""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_READ = re.compile(r'\benv(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"')

# Addresses on the discard port: nothing answers there, so a check that tried to connect to
# the database, the S3 server, Redis or Druid would fail or hang instead of passing.
NOWHERE = "127.0.0.1:9"


def scaled_shape_environment(var_dir: Path) -> dict[str, str]:
    """This process's environment without any app variable, plus the scaled shape's (DEBUG unset)."""
    app_variables = set(SETTINGS_READ.findall((ROOT / "sales_analytics" / "settings.py").read_text()))
    environment = {name: value for name, value in os.environ.items() if name not in app_variables}
    environment.update(
        VAR_DIR=str(var_dir),
        SECRET_KEY=secrets.token_urlsafe(50),
        HTTPS="true",
        ALLOWED_HOSTS="example.com",
        CSRF_TRUSTED_ORIGINS="https://example.com",
        DATABASE_URL=f"postgres://sales:not-a-real-password@{NOWHERE}/sales_analytics",
        S3_BUCKET="sales-analytics",
        S3_ENDPOINT_URL=f"http://{NOWHERE}",
        S3_ACCESS_KEY_ID="dummy-access-key",
        S3_SECRET_ACCESS_KEY="dummy-secret-key",
        REDIS_URL=f"redis://{NOWHERE}/0",
        ANALYTICS_ENGINE="druid",
        DRUID_ROUTER_URL=f"http://{NOWHERE}",
        LOG_FORMAT="json",
    )
    return environment


def deploy_check(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_passes_in_the_scaled_shape(tmp_path):
    result = deploy_check(scaled_shape_environment(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected_warning"),
    [
        ({"HTTPS": None}, "security.W008"),  # no HTTPS redirect, no secure cookies, no HSTS
        ({"SECRET_KEY": "too-short"}, "security.W009"),
    ],
)
def test_deploy_check_fails_without_the_scaled_shape_security_settings(tmp_path, change, expected_warning):
    # Proves the check above is not vacuous: the same command fails when a safeguard is missing.
    environment = scaled_shape_environment(tmp_path)
    for name, value in change.items():
        if value is None:
            environment.pop(name)
        else:
            environment[name] = value
    result = deploy_check(environment)
    assert result.returncode != 0
    assert expected_warning in result.stderr
