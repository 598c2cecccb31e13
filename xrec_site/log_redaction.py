"""Crowd links carry a platform's worker id (``/c/<token>/?PROLIFIC_PID=...``): keep it out of logs.

The id is personal data that xrec stores only as a keyed hash. Whatever logs a request line
or a Referer (gunicorn's access log, runserver's request lines, an error naming a URL) goes
through ``redact_crowd_ids`` first, which drops the query string of every crowd link.
"""

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

# A crowd link's path (annotation.urls: "c/<str:token>/"), absolute or with its host, then its query.
CROWD_LINK_QUERY = re.compile(r"(/c/[^/?#\s\"]+/?)\?[^#\s\"]*")
CROWD_PATH = re.compile(r"^/c/[^/]+/?$")
REDACTED = "[redacted]"


def redact_crowd_ids(text: str) -> str:
    """``text`` with the query string of every crowd link in it replaced by ``[redacted]``."""
    return CROWD_LINK_QUERY.sub(rf"\1?{REDACTED}", text)


class RedactCrowdIds(logging.Filter):
    """A logging filter that rewrites a record's message with crowd link queries redacted.

    The message is formatted here (``getMessage``) so that a URL passed as an argument is
    caught as well as one in the format string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_crowd_ids(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class RedactingGunicornLogger(Logger):
    """gunicorn's logger with crowd link queries dropped from the access and error logs.

    Every string atom of the access log format is redacted (the request line ``%(r)s``, the
    Referer ``%(f)s``, any header or environ atom), and for a request to a crowd link the bare
    query string atoms (``%(q)s``, ``%({query_string}e)s``) are replaced whole.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(RedactCrowdIds())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        crowd_request = bool(CROWD_PATH.match(environ.get("PATH_INFO") or ""))
        for key, value in atoms.items():
            if not isinstance(value, str):
                continue
            if crowd_request and key in {"q", "{query_string}e"} and value:
                atoms[key] = REDACTED
            else:
                atoms[key] = redact_crowd_ids(value)
        return atoms
