"""Environment variables the scaled shape cannot do without.

`sales_analytics/settings.py` reads every variable and gives each a local default; in the
scaled shape (many machines, see docker-compose.yml) those defaults are wrong or unsafe for
the variables below, so a deployment must set them. `tests/test_compose.py` checks that the
web and worker services of docker-compose.yml set all of them.
"""

SCALED_SHAPE_REQUIRED: tuple[str, ...] = (
    # No key file under var/ is shared between machines.
    "SECRET_KEY",
    # The default only allows localhost; secure cookies, HSTS and the HTTPS redirect hang on HTTPS.
    "ALLOWED_HOSTS",
    "HTTPS",
    # Web and worker on different machines must share the database, the files and the cache.
    "DATABASE_URL",
    "S3_BUCKET",
    "REDIS_URL",
    # The default engine is the embedded one, which keeps segments on one machine's disk.
    "ANALYTICS_ENGINE",
    "DRUID_ROUTER_URL",
)
