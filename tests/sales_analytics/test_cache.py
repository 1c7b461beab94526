"""The default cache is shared by every process: django-q2 keeps its heartbeat there and a
publish in the worker must invalidate what the web process cached."""

import json
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

from tests.processes import manage_py


def shell(code: str) -> str:
    """Run Python in a `manage.py shell` process against the test database and cache; its stdout."""
    return manage_py("shell", "--no-imports", "-c", code).stdout


def test_default_cache_is_not_per_process_memory() -> None:
    assert settings.CACHES["default"]["BACKEND"] != "django.core.cache.backends.locmem.LocMemCache"
    assert not isinstance(caches["default"], LocMemCache)


@pytest.mark.django_db(transaction=True)
def test_value_set_in_another_process_is_read_here() -> None:
    key = f"test-cache-{uuid.uuid4().hex}"
    shell(f"from django.core.cache import cache; cache.set({key!r}, {{'from': 'subprocess', 'rows': 3}}, 60)")
    assert cache.get(key) == {"from": "subprocess", "rows": 3}


@pytest.mark.django_db(transaction=True)
def test_value_set_here_is_read_and_deleted_by_another_process() -> None:
    key = f"test-cache-{uuid.uuid4().hex}"
    cache.set(key, {"from": "test", "rows": 5}, 60)
    output = shell(
        "import json; from django.core.cache import cache; "
        f"print(json.dumps(cache.get({key!r}))); cache.delete({key!r})"
    )
    assert json.loads(output.strip().splitlines()[-1]) == {"from": "test", "rows": 5}
    # An invalidation in the other process is seen here too.
    assert cache.get(key) is None
