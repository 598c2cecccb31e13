"""The Celery app. Workers start with ``python manage.py worker`` (or ``celery -A xrec_site worker``)."""

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrec_site.settings")

app = Celery("xrec")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The filesystem transport expects its folders to exist before the first publish.
for folder in (app.conf.broker_transport_options or {}).values():
    if isinstance(folder, str) and folder.startswith(os.sep):
        Path(folder).mkdir(parents=True, exist_ok=True)
