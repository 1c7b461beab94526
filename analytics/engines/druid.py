"""Apache Druid, reached through its router (SQL API and task API)."""

import requests
from django.conf import settings

from analytics.engines import EngineHealth


class DruidEngine:
    name = "druid"

    def health(self) -> EngineHealth:
        url = settings.DRUID_ROUTER_URL.rstrip("/") + "/status/health"
        try:
            response = requests.get(url, timeout=3)
        except requests.RequestException as exc:
            return EngineHealth(ok=False, detail=f"Druid router unreachable ({type(exc).__name__})")
        if response.status_code != 200:
            return EngineHealth(ok=False, detail=f"Druid router answered HTTP {response.status_code}")
        return EngineHealth(ok=True, detail="Druid router healthy")
