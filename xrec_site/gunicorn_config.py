"""gunicorn settings every xrec launch uses: ``gunicorn -c python:xrec_site.gunicorn_config``.

Command-line flags given with ``-c`` still apply on top (bind, workers, log files).
"""

import gc
from typing import Any

# The access log keeps crowd links without their query string, which holds the worker's id.
logger_class = "xrec_site.log_redaction.RedactingGunicornLogger"


def post_worker_init(worker: Any) -> None:
    """Move everything the worker has loaded (Django, the apps, their libraries: about 180,000
    objects) out of the garbage collector's view. They live as long as the process, yet each
    full collection walked them all: about 100 ms in the middle of some request, every few
    hundred requests. Afterwards a full collection takes about 4 ms (measured on a 2-core AMD
    EPYC). With ``--preload`` the master's objects are frozen too, so collections in the
    workers do not write to, and copy, the pages they share with it."""
    gc.freeze()


def when_ready(server: Any) -> None:
    """With ``--preload`` the application is loaded in the master: freeze before forking."""
    gc.freeze()
