"""Settings for xrec: one module, environments differ only by environment variables.

The embedded default needs no servers: SQLite and Celery's filesystem transport under ``var/``.
Setting ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to PostgreSQL and Redis.
See ``.env.example`` for every variable read here.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF
from kombu import Queue

from xrec_site.secret_files import secret_file

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


# An embedded install keeps a generated key in var/ so sessions survive restarts without
# anyone committing a key; servers pass DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secret_file(VAR_DIR / "secret_key")
# The key of the hash a crowd worker's platform id is stored as (annotation.services.campaigns).
# Not SECRET_KEY: rotating that (or a host generating its own) must not stop a campaign from
# recognising its returning workers. Never change it while a campaign runs.
XREC_CROWD_SECRET = os.environ.get("XREC_CROWD_SECRET") or secret_file(VAR_DIR / "crowd_secret")
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
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
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
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during authentication into its page.
    "axes.middleware.AxesMiddleware",
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Prepared statements: a query a connection has run this many times is prepared, and
    # PostgreSQL stops planning it again. Planning was most of the server's time per statement
    # on the annotation submit path (about 3 of 4 ms). Server-side parameters are what lets
    # psycopg prepare. Behind a pooler in transaction mode that cannot carry prepared statements
    # (PgBouncer before 1.21), set it to "off".
    _prepare = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5").strip().lower()
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": True,
        "prepare_threshold": None if _prepare in ("", "off", "none") else int(_prepare),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
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

# --- Transport security (manage.py check --deploy) ---------------------------------------
# With DEBUG off every default is the production one: HTTPS only, HSTS, Secure cookies.
# Serving plain HTTP on a local machine (make demo, the test suite) is the exception, and it
# turns DJANGO_SECURE_SSL_REDIRECT and DJANGO_SECURE_COOKIES off explicitly.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Process managers probe /healthz on the server's own port over plain HTTP: a redirect would
# answer them without asking the database. It sets no cookie and shows nothing private.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Sent on HTTPS responses only. A year, subdomains included and preload asked for, is what
# hstspreload.org requires; the preload directive does nothing until the domain is submitted.
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
# Behind a proxy that terminates TLS, the header the proxy sets to "https" (e.g.
# X-Forwarded-Proto). Only set it when the proxy always sets or strips that header itself:
# otherwise a client could claim HTTPS over plain HTTP.
if proxy_ssl_header := os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip():
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + proxy_ssl_header.upper().replace("-", "_"), "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Content-Security-Policy (django-csp) -------------------------------------------------
# No inline script or style anywhere: scripts and styles come from static files, htmx's
# indicator style is in site.css (templates/base.html turns its injected <style> off), and
# bars are SVG attributes, which CSP does not govern. drf-spectacular's docs page has its inline
# <style> moved to static/css/swagger_ui.css by templates/drf_spectacular/swagger_ui.html.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for images only: the API docs' Swagger UI draws its icons as data: SVG in its CSS.
        # An image cannot run script, so this opens nothing that script-src keeps shut.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        # https: as well as 'self': a finished crowd worker's form POST ends in a redirect to the
        # platform's completion URL (Prolific), and an MTurk task posts its form to MTurk's
        # externalSubmit. Chromium applies form-action to a form's redirects, so 'self' alone
        # would stop a worker without JavaScript at the very end.
        "form-action": [SELF, "https:"],
    }
}

# --- Login throttling (django-axes) -------------------------------------------------------
# After XREC_LOGIN_FAILURE_LIMIT failed logins for one username from one IP address, that
# pair is refused (the right password included) for XREC_LOGIN_COOLOFF_MINUTES, on the site's
# login form and the admin's alike. Behind proxies REMOTE_ADDR is the nearest proxy's address,
# the same for everyone: XREC_TRUSTED_PROXIES says how many proxies in front of gunicorn append
# to X-Forwarded-For, and the client's address is read from there (xrec_site.client_address).
# 0, the default, trusts no header: a client could otherwise claim any address per attempt.
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out pair is refused before a password is hashed.
    "xrec_site.auth_backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("XREC_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("XREC_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
XREC_TRUSTED_PROXIES = int(os.environ.get("XREC_TRUSTED_PROXIES", "0"))
AXES_CLIENT_IP_CALLABLE = "xrec_site.client_address.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no start-up banner in the output of every manage.py command
# No row per successful login: every crowd link signs its worker in, and axes' access log would
# keep each worker's IP address and user agent for good. The lockout needs failed attempts only.
AXES_DISABLE_ACCESS_LOG = True

# --- REST framework -----------------------------------------------------------------------
# Session for the browser, tokens for scripts (`manage.py drf_create_token <user>`, or the
# admin's Tokens page); no Basic auth, which would be a second, unthrottled password form.
# Throttle rates: per signed-in user and per anonymous IP, e.g. "1200/minute".
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # The anonymous throttle's key: without this DRF keys on the whole X-Forwarded-For header,
    # which a client writes as it likes (a fresh allowance per request); the same trusted proxy
    # count as the login lockout's.
    "NUM_PROXIES": XREC_TRUSTED_PROXIES,
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("XREC_API_ANON_RATE", "60/minute"),
        "user": os.environ.get("XREC_API_USER_RATE", "1200/minute"),
    },
    "DEFAULT_PAGINATION_CLASS": "recommendations.shared.pagination.ApiPagination",
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
    "explanations.claim_check_*": {"queue": "gpu"},
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

# Crowd links carry the platform's worker id in their query string: every handler drops the
# query of a crowd link, including runserver's request lines (django.server). gunicorn's own
# access log is redacted by xrec_site.gunicorn_config.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_crowd_ids": {"()": "xrec_site.log_redaction.RedactCrowdIds"}},
    "formatters": {
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_crowd_ids"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_crowd_ids"],
        },
    },
    "loggers": {"django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False}},
    "root": {"handlers": ["console"], "level": os.environ.get("XREC_LOG_LEVEL", "INFO")},
}
