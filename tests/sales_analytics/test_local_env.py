"""bin/local-env, sourced by `make run` (bin/run-local) and bin/manage: the local default's secret key
is generated once into $VAR_DIR/secret_key and handed to Django as SECRET_KEY."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"


def _key_exported_in(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """bin/local-env run in `project` (with its .env), VAR_DIR and SECRET_KEY only from `env`."""
    script = f'PY={PYTHON}; source {ROOT}/bin/local-env; local_secret_key_export; printf "%s" "$SECRET_KEY"'
    base = {name: value for name, value in os.environ.items() if name not in ("SECRET_KEY", "VAR_DIR")}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=project,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _exported_key(var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _key_exported_in(ROOT, VAR_DIR=str(var_dir), **env)


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


def test_a_var_dir_set_in_dot_env_holds_the_key(tmp_path: Path) -> None:
    # The settings take VAR_DIR from .env; the key went to ./var/secret_key all the same.
    var_dir = tmp_path / "state"
    (tmp_path / ".env").write_text(f"# Local state elsewhere\nVAR_DIR='{var_dir}'\n")

    exported = _key_exported_in(tmp_path)
    assert exported.stdout == (var_dir / "secret_key").read_text().strip()
    assert not (tmp_path / "var").exists()


def test_without_var_dir_anywhere_the_key_is_under_var(tmp_path: Path) -> None:
    exported = _key_exported_in(tmp_path)
    assert exported.stdout == (tmp_path / "var" / "secret_key").read_text().strip()
