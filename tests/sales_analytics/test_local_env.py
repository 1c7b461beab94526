"""bin/local-env, sourced by `make run` (bin/run-local) and bin/manage: the local default's secret key
is generated once into $VAR_DIR/secret_key and handed to Django as SECRET_KEY."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"


def _exported_key(var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = 'PY=.venv/bin/python; source bin/local-env; local_secret_key_export; printf "%s" "$SECRET_KEY"'
    base = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env={**base, "VAR_DIR": str(var_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_generates_a_key_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    first = _exported_key(var_dir)
    second = _exported_key(var_dir)

    key_file = var_dir / "secret_key"
    assert len(first.stdout) >= 50
    assert second.stdout == first.stdout == key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "Generated a secret key" in first.stderr and second.stderr == ""


def test_a_secret_key_in_the_environment_wins(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    assert _exported_key(var_dir, SECRET_KEY="from-the-environment").stdout == "from-the-environment"
    assert not (var_dir / "secret_key").exists()


def test_bin_manage_runs_commands_with_the_kept_key(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    base = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    completed = subprocess.run(
        [
            str(ROOT / "bin" / "manage"),
            "shell",
            "--no-imports",
            "-c",
            "from django.conf import settings; print(settings.SECRET_KEY)",
        ],
        cwd=tmp_path,
        env={**base, "VAR_DIR": str(var_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == (var_dir / "secret_key").read_text().strip()
