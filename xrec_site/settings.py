"""Settings for xrec: one module, environments differ only by environment variables.

The embedded default needs no servers: SQLite and Celery's filesystem transport under ``var/``.
Setting ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to PostgreSQL and Redis.
See ``.env.example`` for every variable read here.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
import django_stubs_ext
from kombu import Queue

# Lets classes such as ModelAdmin[Dataset] be subscripted at run time for type checking.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


# Relative paths are taken from the project root, whatever the working directory.
VAR_DIR = BASE_DIR / os.environ.get("XREC_VAR_DIR", "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    # An embedded install keeps a generated key in var/ so sessions survive restarts
    # without anyone committing a key; servers pass DJANGO_SECRET_KEY.
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_results",
    "recommendations",
    "explanations",
    "annotation",
    "xrec_site",
]

MIDDLEWARE = [
    "xrec_site.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "xrec_site.urls"
WSGI_APPLICATION = "xrec_site.wsgi.application"
ASGI_APPLICATION = "xrec_site.asgi.application"

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
                "xrec_site.roles.roles_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'xrec.sqlite3'}",
        # Persistent connections save a connect per request (about 6 ms on PostgreSQL);
        # health checks drop one the server has closed.
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; the busy timeout makes a
    # second writer wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        # A 256 MB page cache (default 2 MB) keeps index pages in memory during big imports.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144;",
    }
    # A file, not Django's in-memory default, so a worker process in flow tests sees it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every start when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (tests, a fresh checkout) whitenoise serves straight from the finders.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"

# Study reports and per-run text metrics are cached here, shared by every web process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
        "TIMEOUT": 7 * 24 * 3600,
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI schema at /api/schema/, docs at /api/docs/ (staff only); UI assets come from the
# sidecar package and are served as static files: nothing loads from a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "xrec API",
    "DESCRIPTION": "Datasets, recommender runs, generated explanations, judge runs and annotation campaigns.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "recommendations.apis.schema_path_parameters",
    ],
    # Several models have ``status`` and ``mode`` fields; each choice set gets one stable enum name.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "recommendations.models.Job.Status",
        "ItemStatusEnum": "explanations.models.Explanation.Status",
        "CampaignStatusEnum": "annotation.models.Campaign.Status",
        "AssignmentStatusEnum": "annotation.models.Assignment.Status",
        "CampaignModeEnum": "annotation.models.Campaign.Mode",
        "JudgeModeEnum": "explanations.models.JudgeRun.Mode",
    },
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder for in and out: producer and worker share this machine's disk.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task with acks_late (generation chunks) held by a worker that dies is redelivered after
    # this many seconds, so it must exceed the longest chunk; a starting worker also requeues
    # stalled chunks at once (explanations.tasks).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("XREC_VISIBILITY_TIMEOUT", "14400"))}
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
# Explicit routing keys: without them Celery binds every queue with the key "default", and a
# task sent to "gpu" would be delivered to both queues.
CELERY_TASK_QUEUES = (Queue("default", routing_key="default"), Queue("gpu", routing_key="gpu"))
# Routed by task name: anything that loads a model onto an accelerator goes to "gpu".
CELERY_TASK_ROUTES = {
    "explanations.generate_*": {"queue": "gpu"},
    "explanations.train_*": {"queue": "gpu"},
    "explanations.judge_*": {"queue": "gpu"},
    "explanations.probe_*": {"queue": "gpu"},
    "*": {"queue": "default"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- xrec ---------------------------------------------------------------------------------
# Models load from local folders only; nothing reaches for a hub at run time unless the
# environment says otherwise explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
XREC_MODEL_DIR = Path(os.environ.get("XREC_MODEL_DIR", VAR_DIR / "models"))
# A text-metrics job still RUNNING this long after it started has lost its worker, and one that
# FAILED this long ago is tried again: both are requeued when a report next asks for them.
XREC_TEXT_METRICS_STALE_SECONDS = int(os.environ.get("XREC_TEXT_METRICS_STALE_SECONDS", "14400"))
XREC_TEXT_METRICS_RETRY_SECONDS = int(os.environ.get("XREC_TEXT_METRICS_RETRY_SECONDS", "600"))
XREC_UPLOAD_DIR = Path(os.environ.get("XREC_UPLOAD_DIR", VAR_DIR / "uploads"))
# Any single file an importer reads (or a zip member, uncompressed) may not exceed this.
XREC_IMPORT_MAX_BYTES = int(os.environ.get("XREC_IMPORT_MAX_BYTES", str(1024**3)))
FILE_UPLOAD_TEMP_DIR = None
DATA_UPLOAD_MAX_NUMBER_FILES = 10

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("XREC_LOG_LEVEL", "INFO")},
}
