"""gunicorn settings every xrec launch uses: ``gunicorn -c python:xrec_site.gunicorn_config``.

Command-line flags given with ``-c`` still apply on top (bind, workers, log files).
"""

# The access log keeps crowd links without their query string, which holds the worker's id.
logger_class = "xrec_site.log_redaction.RedactingGunicornLogger"
