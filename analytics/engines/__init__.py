"""Analytics engines behind one small protocol, looked up by name at call time."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class EngineHealth:
    ok: bool
    detail: str


class EngineError(Exception):
    """The engine could not do what was asked; `detail` is one plain sentence a user can act on."""

    code = "engine_error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


# Called while an engine loads an upload: (engine task id, message for the upload's task row).
EngineProgress = Callable[[str, str], None]


class Engine(Protocol):
    name: str
    dialect: Any
    # Whether the query layer routes to rollup files (the embedded engine) or the engine rolls up itself.
    uses_rollup_files: bool
    # Whether `publish` loads rows the engine counts before the catalogue switch (Druid): a publish
    # failing after it leaves rows to remove (`publish_undo`).
    loads_before_switch: bool
    title: str  # the engine's name in messages

    def health(self) -> EngineHealth:
        """Whether the engine can answer queries now, in words safe to show anyone."""
        ...

    def source(self, *, snapshot: Any, rollup: Any | None) -> Any:
        """The `analytics.sql.Source` to read for this data version (raw rows or one rollup)."""
        ...

    def execute(self, sql: str, params: list) -> list[tuple]: ...

    def publish(
        self,
        *,
        request: Any,
        check_cancelled: Callable[[], None] | None = None,
        on_progress: EngineProgress | None = None,
    ) -> str | None:
        """Load an upload's curated rows (`analytics.services.PublishRequest`) before the catalogue switch.

        Returns the engine's task id (None when the engine reads the catalogue's files itself).
        Safe to call again for the same upload: it never loads the rows twice.
        """
        ...

    def publish_undo(self, *, datasource_name: str, upload_id: Any) -> bool:
        """Remove what `publish` loaded for an upload the catalogue never switched in; whether there was any."""
        ...


def _embedded() -> Engine:
    from analytics.engines.embedded import EmbeddedEngine

    return EmbeddedEngine()


def _druid() -> Engine:
    from analytics.engines.druid import DruidEngine

    return DruidEngine()


ENGINE_FACTORIES = {"embedded": _embedded, "druid": _druid}


def get_engine(name: str | None = None) -> Engine:
    """The configured engine (settings.ANALYTICS_ENGINE), read at call time so tests can switch it."""
    engine_name = name or settings.ANALYTICS_ENGINE
    try:
        factory = ENGINE_FACTORIES[engine_name]
    except KeyError:
        raise ImproperlyConfigured(
            f"ANALYTICS_ENGINE={engine_name!r} is not one of {', '.join(sorted(ENGINE_FACTORIES))}."
        ) from None
    return factory()
