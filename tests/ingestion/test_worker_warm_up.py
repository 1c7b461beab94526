"""A new django-q2 worker readies the pipeline while idle, not in its first task."""

import json
import subprocess
import sys

import pytest
from django.conf import settings

from ingestion import tasks
from tests.processes import django_subprocess_env

# Runs in a fresh interpreter: the test process has long imported the pipeline.
_SPAWN_PROBE = """
import json, sys
import django
django.setup()
import polars as pl
from pandera.api.polars.container import DataFrameSchema
from django_q.signals import post_spawn

def ready():
    return {
        "pipeline": "ingestion.pipeline" in sys.modules,
        "pandera": (DataFrameSchema, pl.DataFrame) in DataFrameSchema.BACKEND_REGISTRY,
    }

before = ready()
post_spawn.send(sender="django_q", proc_name="Process-1:1")
print(json.dumps({"before": before, "after": ready()}))
"""


def test_a_spawned_worker_imports_the_pipeline_and_readies_pandera() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _SPAWN_PROBE],
        cwd=settings.BASE_DIR,
        env={**django_subprocess_env(), "DJANGO_SETTINGS_MODULE": "sales_analytics.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    probe = json.loads(completed.stdout.strip().splitlines()[-1])
    assert probe["before"] == {"pipeline": False, "pandera": False}
    assert probe["after"] == {"pipeline": True, "pandera": True}


def test_a_failing_warm_up_is_logged_and_leaves_the_worker_running(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr("ingestion.transform.validation_warm_up", broken)
    tasks.worker_warm_up(sender="django_q", proc_name="Process-1:1")
    assert "worker warm-up failed" in caplog.text
    assert "disk gone" in caplog.text
