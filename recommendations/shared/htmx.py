"""htmx in views: the request type that has ``request.htmx`` (django-htmx's middleware sets
it), and the answer to a polling region."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def polled_partial(
    request: HttpRequest, template: str, context: dict[str, Any], *, finished: bool, reload: bool = False
) -> HttpResponse:
    """The partial that a region polling every few seconds asked for (STYLE: long work is a
    polling partial that stops itself). Once the work has ``finished`` the answer is status
    286, which tells htmx to stop polling; with ``reload`` it also reloads the whole page
    once, for pages whose result appears outside the polled region."""
    response = render(request, template, context)
    if not finished:
        return response
    stopped = HttpResponseStopPolling(response.content)
    if reload:
        stopped["HX-Refresh"] = "true"
    return stopped
