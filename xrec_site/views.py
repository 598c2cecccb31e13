from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.models import Campaign, Participant
from recommendations.models import Dataset


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role's starting page: what it may use, and nothing it may not."""
    datasets = Dataset.objects.visible_to(request.user)[:5]
    user = request.user
    assert user.is_authenticated  # login_required
    participations = Participant.objects.filter(user=user).select_related("campaign")
    joinable = (
        Campaign.objects.open().exclude(participants__user=user)
        if request.user.has_perm("annotation.annotate")
        else Campaign.objects.none()
    )
    context = {"datasets": datasets, "participations": participations, "joinable": joinable}
    return render(request, "home.html", context)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for process managers and the demo: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
