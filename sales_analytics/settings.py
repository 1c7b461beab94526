"""Settings, all read from one environment object.

Every setting has a safe local default except secrets; an integration (PostgreSQL,
S3, Redis, Druid) switches on when its variable is set. `.env.example` documents
every variable read here.
"""

import zoneinfo
from pathlib import Path

import environ
from botocore.config import Config as BotoConfig
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for development; real deployments set variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG: bool = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, the only place secrets come from."""
    key = env.str("SECRET_KEY", default="")
    if not key:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: secrets are read only from the environment. Set SECRET_KEY to a long "
            "random value (`make run` and `bin/manage` generate one into $VAR_DIR/secret_key and set it)."
        )
    return key


SECRET_KEY = _secret_key()

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS=true is the scaled shape behind a TLS-terminating load balancer.
HTTPS: bool = env.bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
# The load balancer probes health over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Scripts and style sheets only from this site (static/, vendored; no inline script anywhere: htmx
# runs with allowEval off, see base.html). Style attributes stay allowed: ECharts' tooltips and the
# admin write them; they cannot load anything but images from here.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

INSTALLED_APPS = [
    # First: its `changepassword` command (which also revokes API tokens and lifts a login lock) replaces
    # django.contrib.auth's.
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "graphene_django",
    # Swagger UI (/api/docs) from django-ninja's own static files instead of a CDN.
    "ninja",
    "django_q",
    "analytics",
    "ingestion",
    "dashboard",
]

MIDDLEWARE = [
    "sales_analytics.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "sales_analytics.security_headers.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginRequiredForPagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After authentication and messages; before the login-required check (a view hook) sees the user.
    "accounts.middleware.SessionIdleTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After authentication and messages; refuses before any view or CSRF check parses the body.
    "sales_analytics.request_limits.RequestBodyGuardMiddleware",
    # Innermost: the JSON 405 it makes still gets the request id and security headers on its way out.
    "sales_analytics.errors.ApiMethodNotAllowedMiddleware",
]

ROOT_URLCONF = "sales_analytics.urls"
WSGI_APPLICATION = "sales_analytics.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "db.sqlite3"
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write the same file: WAL lets readers run during a
    # write, IMMEDIATE takes the write lock up front (no deadlocking lock upgrades) and
    # the busy timeout waits for the other process instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    }
else:
    # Persistent connections, not psycopg's pool: Django refuses both together.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- File storage -----------------------------------------------------------------
STORAGE_DIR = Path(env.str("STORAGE_DIR", default=str(VAR_DIR / "storage")))
S3_BUCKET: str = env.str("S3_BUCKET", default="")
S3_ENDPOINT_URL: str = env.str("S3_ENDPOINT_URL", default="")
S3_REGION: str = env.str("S3_REGION", default="us-east-1")


def s3_storage_options() -> dict:
    """django-storages options that AWS and S3-compatible servers both accept."""
    options = {
        "bucket_name": S3_BUCKET,
        "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
        "region_name": S3_REGION,
        "endpoint_url": S3_ENDPOINT_URL or None,
        "addressing_style": env.str("S3_ADDRESSING_STYLE", default="path"),
        "signature_version": "s3v4",
        "file_overwrite": False,
        "default_acl": None,
        "querystring_auth": True,
    }
    if S3_ENDPOINT_URL:
        # boto3 >= 1.36 adds checksum trailers that several S3-compatible servers mishandle.
        options["client_config"] = BotoConfig(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": options["addressing_style"]},
            retries={"max_attempts": 3, "mode": "standard"},
        )
    return options


if S3_BUCKET:
    DEFAULT_STORAGE = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_storage_options()}
else:
    DEFAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(STORAGE_DIR)},
    }
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Cache (shared by web and worker processes) -----------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A file cache, not local memory: django-q2 keeps its cluster heartbeat here and a
    # publish in the worker must invalidate what the web process cached. Django's, with add()
    # and incr() made atomic for counters such as the login throttle's.
    CACHES = {
        "default": {
            "BACKEND": "sales_analytics.file_cache.AtomicFileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    }

# --- Background tasks (django-q2) -------------------------------------------------
Q_CLUSTER: dict = {
    "name": "sales_analytics",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT_SECONDS", default=3600),
    "retry": env.int("Q_TIMEOUT_SECONDS", default=3600) + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    # KB of peak RSS after which a worker is replaced once its task ends: one large upload's
    # memory is returned to the machine instead of being carried into every later task.
    "max_rss": env.int("Q_MAX_RSS_MB", default=400) * 1024,
    # How often the ORM broker looks for queued tasks: an upload waits up to this long for a worker.
    "poll": 0.2,
    "cache": "default",
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Analytics engine -------------------------------------------------------------
ANALYTICS_ENGINE: str = env.str("ANALYTICS_ENGINE", default="embedded")
DRUID_ROUTER_URL: str = env.str("DRUID_ROUTER_URL", default="http://127.0.0.1:8888")
DRUID_TIMEOUT_SECONDS: int = env.int("DRUID_TIMEOUT_SECONDS", default=30)
# Retries (with backoff) of a Druid call that found the router unreachable or overloaded.
DRUID_RETRIES: int = env.int("DRUID_RETRIES", default=3)
# How long a publish waits for its Druid ingestion task and for the new segments to be queryable.
DRUID_PUBLISH_TIMEOUT_SECONDS: int = env.int("DRUID_PUBLISH_TIMEOUT_SECONDS", default=1800)
# Credentials put into the ingestion's S3 input source when Druid must read the bucket with
# another key than its own (druid.s3.accessKey/secretKey). Empty: Druid's own key pair.
DRUID_S3_ACCESS_KEY_ID: str = env.str("DRUID_S3_ACCESS_KEY_ID", default="")
DRUID_S3_SECRET_ACCESS_KEY: str = env.str("DRUID_S3_SECRET_ACCESS_KEY", default="")

# --- Product ------------------------------------------------------------------------
MAX_UPLOAD_MB: int = env.int("MAX_UPLOAD_MB", default=500)
DEFAULT_DATASOURCE: str = env.str("DEFAULT_DATASOURCE", default="sales")
# Most rows one metrics answer (REST breakdown, GraphQL branches/profitability) may have: a larger
# one is refused, never cut silently (3 M values were 298 MB of JSON and a 300 MB bigger worker).
METRICS_MAX_ROWS: int = env.int("METRICS_MAX_ROWS", default=10_000)
# Rows validated per batch at most: bounds the worker's memory on large files.
INGEST_BATCH_ROWS: int = env.int("INGEST_BATCH_ROWS", default=150_000)
# Memory one batch may take (estimated from the file's first rows): a file of many columns gets
# batches of fewer rows. 96 MiB keeps 150,000 rows of a typical sales file (~430 bytes a row).
INGEST_BATCH_BYTES: int = env.int("INGEST_BATCH_BYTES", default=96 << 20)
# A running ingestion task whose worker wrote no heartbeat for this long (or whose process on this
# machine is gone) is failed as `worker_lost`, so it can be retried; its worker beats six times as often.
INGEST_WORKER_LOST_SECONDS: int = env.int("INGEST_WORKER_LOST_SECONDS", default=60)
# Files no data version needs are deleted by the daily sweep once this old (analytics.housekeeping);
# longer than any publish (DRUID_PUBLISH_TIMEOUT_SECONDS) or query holding an older version.
FILES_SWEEP_GRACE_HOURS: int = env.int("FILES_SWEEP_GRACE_HOURS", default=24)
# Uploads stream to temporary files: the whole file is never held in memory.
FILE_UPLOAD_HANDLERS = ["ingestion.uploads.HashingUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Every upload path (page, REST upload and preview, GraphQL uploadFile) takes one file per request.
DATA_UPLOAD_MAX_NUMBER_FILES = 1
FILE_UPLOAD_TEMP_DIR = str(VAR_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# --- Alerts and email -----------------------------------------------------------------
# Email goes to the console unless EMAIL_URL names an SMTP server (smtp+tls://user:pass@host:587).
EMAIL_URL: str = env.str("EMAIL_URL", default="consolemail://")
_email = environ.Env.email_url_config(EMAIL_URL)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="alerts@localhost")
ALERT_WEBHOOK_TIMEOUT_SECONDS: int = env.int("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5)
# Off: alert webhooks may call public addresses only, not the servers' own network (dashboard.webhooks).
ALERT_WEBHOOK_ALLOW_PRIVATE: bool = env.bool("ALERT_WEBHOOK_ALLOW_PRIVATE", default=False)

# --- Auth -----------------------------------------------------------------------------
# Messages stay on the server: one shows a new API token, which must never ride in a (signed,
# readable) cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_URL = "login"
# Failed logins (site and admin): past these many for one username, or from one address, within
# LOGIN_THROTTLE_SECONDS of the first, further attempts are refused until that time has passed.
LOGIN_THROTTLE_USER_FAILURES: int = env.int("LOGIN_THROTTLE_USER_FAILURES", default=5)
LOGIN_THROTTLE_IP_FAILURES: int = env.int("LOGIN_THROTTLE_IP_FAILURES", default=30)
LOGIN_THROTTLE_SECONDS: int = env.int("LOGIN_THROTTLE_SECONDS", default=900)
# Proxies (load balancers) in front of the app that append the client's address to X-Forwarded-For.
# 0: the header is ignored and the connection's address counts, since a client that reaches the
# app directly writes whatever it likes into it.
TRUSTED_PROXY_COUNT: int = env.int("TRUSTED_PROXY_COUNT", default=0)
LOGIN_REDIRECT_URL = "dashboard:overview"
# A browser session unused for this many minutes is logged out (the login page says why); self-refreshing
# pages do not count as use.
SESSION_IDLE_MINUTES: int = env.int("SESSION_IDLE_MINUTES", default=480)
# Days a new API token is valid unless its maker chooses otherwise (0: tokens never expire).
API_TOKEN_DAYS: int = env.int("API_TOKEN_DAYS", default=90)
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"


def _time_zone() -> str:
    """TIME_ZONE from the environment, refused at start when it names no zone (not at the first page)."""
    name = env.str("TIME_ZONE", default="UTC")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"TIME_ZONE {name!r} is not a time zone: use an IANA name such as UTC, Europe/Berlin or Asia/Yangon."
        ) from None
    return name


# The zone times are shown in (data as of, uploads, alerts) and whose date is "today". Timestamps are
# stored in UTC (USE_TZ) and the APIs give them with their offset; sales dates are business-local as
# the files write them, and nothing that reads or groups them depends on this.
TIME_ZONE = _time_zone()
USE_I18N = True
USE_TZ = True

GRAPHENE = {"SCHEMA": "sales_analytics.schema.schema", "ATOMIC_MUTATIONS": False}
# Each field is resolved on its own, under its alias and arguments: these bound one request's work.
# Root fields per operation (e.g. aliased `dashboardData`s with different filters).
GRAPHQL_MAX_ROOT_FIELDS: int = env.int("GRAPHQL_MAX_ROOT_FIELDS", default=10)
# Fields in the whole request, fragments counted at each use; the standard introspection query
# (GraphiQL, client libraries) selects about 220.
GRAPHQL_MAX_FIELDS: int = env.int("GRAPHQL_MAX_FIELDS", default=300)

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "sales_analytics.observability.ContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["context"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django_q": {"level": LOG_LEVEL, "propagate": True},
    },
}
