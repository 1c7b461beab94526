from pathlib import Path

import pytest

# CI lays `shared/` beside the clone, as on a developer's machine.
REAL_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "supermarket_sales.csv"


@pytest.fixture
def tasks_inline(monkeypatch):
    """Queued tasks run at once in this process, through django-q2's real entry point."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def real_file() -> Path:
    assert REAL_FILE.exists(), f"missing {REAL_FILE}"
    return REAL_FILE
