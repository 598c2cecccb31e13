"""Pages for annotators (rating, consent, crowd entry) and researchers (campaigns, monitoring, export).

Annotator pages look up assignments through ``Assignment.objects.of_user(request.user)``
and participants through the signed-in account, so anyone else's id is a 404. Nothing
that names a generator, adapter, prompt or run reaches an annotator's page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url

from annotation.agreement import campaign_monitor
from annotation.exports import (
    EXPORT_CONTENT_TYPES,
    EXPORT_FIELDS,
    campaign_preferences,
    rating_export_lines,
    rating_export_rows,
)
from annotation.forms import (
    AnswerForm,
    CampaignClaimCheckForm,
    CampaignForm,
    ClaimsTeacherTuningForm,
    JudgeTuningForm,
    ReferenceItemForm,
    ReidentificationForm,
    TeacherTuningForm,
)
from annotation.markdown import render_markdown
from annotation.models import Assignment, Campaign, CampaignItem, Criterion, ItemClaim, Participant, PrivacyFlag
from annotation.querysets import claim_pieces, task_context
from annotation.services.assignments import SubmitError, SubmitResult, campaign_assign_next, rating_submit
from annotation.services.campaigns import (
    MTURK_FRAME_HOSTS,
    MTURK_PREVIEW,
    campaign_close,
    campaign_create,
    campaign_open,
    campaign_reference_item_add,
    crowd_participant_enter,
    mturk_submit_url,
    participant_consent,
    participant_join,
    participant_set_excluded,
)
from annotation.services.claims import campaign_claim_checks_start, item_claims_set
from annotation.services.errors import CampaignError
from annotation.services.first_person import (
    FIRST_PERSON_RETRIES,
    elicitation_items,
    elicited_rating_set,
    elicited_ratings,
    first_person_counts,
    first_person_items_create,
    first_person_progress,
    first_person_recommend,
    first_person_retry,
    participant_data_delete,
    rating_scale,
)
from annotation.services.judge_tuning import campaign_judge_tuning_start
from annotation.services.privacy import DEFAULT_THRESHOLD, campaign_reidentification, privacy_flag_decide
from annotation.services.teacher import campaign_teacher_start
from explanations.claims import word_pieces
from explanations.forms import JudgeTuningOptionsForm
from explanations.models import AdapterTraining, Explanation
from explanations.services.generators import GenerationError
from recommendations.models import Item
from recommendations.shared.htmx import HtmxHttpRequest, polled_partial
from recommendations.shared.select import Layout, select_list, select_models, table

# Crowd platforms and the query parameters their links carry: (worker id, other ids kept).
CROWD_PARAMETERS = {
    "prolific": ("PROLIFIC_PID", ("STUDY_ID", "SESSION_ID")),
    "mturk": ("workerId", ("assignmentId", "hitId", "turkSubmitTo")),
}


CLAIMS_PAGE_SIZE = 25

# --- Researchers ----------------------------------------------------------------------------


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def campaign_list(request: HttpRequest) -> HttpResponse:
    """Every campaign the signed-in researcher may monitor (``visible_to``)."""
    campaigns = Campaign.objects.visible_to(request.user).select_related("recommender_run__dataset")
    return render(request, "annotation/campaign_list.html", {"campaigns": campaigns})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def campaign_create_view(request: HttpRequest) -> HttpResponse:
    """The new-campaign form; a choice the service refuses (``CampaignError``) is shown on the
    form, and nothing is stored."""
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            campaign = campaign_create(
                created_by=request.user,
                name=data["name"],
                generation_runs=list(data["generation_runs"]),
                mode=data["mode"],
                sample=data["sample"],
                sample_size=data["sample_size"],
                seed=data["seed"],
                overlap=data["overlap"],
                items_per_annotator=data["items_per_annotator"],
                lease_minutes=data["lease_minutes"],
                routing=data["routing"],
                close_when_settled=data["close_when_settled"],
                audience=data["audience"],
                elicit_count=data["elicit_count"],
                first_person_k=data["first_person_k"],
                instructions=data["instructions"],
                consent_text=data["consent_text"],
                attention_checks=data["attention_checks"],
                check_every=data["check_every"],
                max_check_failures=data["max_check_failures"],
                completion_url=data["completion_url"],
                rubric=data["rubric"],
                profile_fields=data["profile_fields"],
                history_length=data["history_length"],
            )
        except CampaignError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("annotation:campaign_detail", campaign_id=campaign.pk)
    return render(request, "annotation/campaign_form.html", {"form": form})


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def campaign_detail(request: HtmxHttpRequest, campaign_id: int) -> HttpResponse:
    """The campaign page. Its monitor region polls itself (htmx target ``monitor``) and stops
    polling (status 286) once the campaign is closed, when its figures can no longer change."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    context = {"campaign": campaign, "monitor": campaign_monitor(campaign)}
    if request.htmx and request.htmx.target == "monitor":
        return polled_partial(
            request, "annotation/campaign_detail.html#monitor", context, finished=not campaign.is_open
        )
    context |= {
        "criteria": list(campaign.criteria.all()),
        "runs": campaign.generation_runs.select_related("generator", "template"),
        "crowd_link": request.build_absolute_uri(reverse("annotation:crowd_entry", args=[campaign.public_token])),
        "reference_form": ReferenceItemForm(),
        "reference_items": campaign.items.filter(
            kind__in=[CampaignItem.Kind.GOLD, CampaignItem.Kind.TRAINING]
        ).select_related("explanation"),
        "export_fields": EXPORT_FIELDS,
        "privacy_flags": campaign.privacy_flags.select_related("decided_by"),
        "claim_check_form": CampaignClaimCheckForm() if campaign.mode == Campaign.Mode.CLAIMS else None,
        "first_person": first_person_counts(campaign) if campaign.is_first_person else None,
    }
    return render(request, "annotation/campaign_detail.html", context)


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def campaign_privacy(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The re-identification estimate of the history the campaign shows, as a fragment of its page,
    with the longest history below the researcher's ``threshold`` (default 5%)."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    form = ReidentificationForm(request.GET)
    if not form.is_valid():
        return render(request, "annotation/_privacy.html", {"form": form}, status=400)
    threshold = form.cleaned_data["threshold"] or DEFAULT_THRESHOLD
    return render(
        request, "annotation/_privacy.html", {"check": campaign_reidentification(campaign, threshold=threshold)}
    )


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def privacy_flag_decide_view(request: HttpRequest, campaign_id: int, flag_id: int) -> HttpResponse:
    """Exclude the items that show a privacy finding, or accept it; back to the campaign page."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    flag = get_object_or_404(PrivacyFlag.objects.filter(campaign=campaign), pk=flag_id)
    try:
        privacy_flag_decide(flag=flag, decision=request.POST.get("decision", ""), decided_by=request.user)
    except CampaignError as exc:
        messages.error(request, str(exc))
    return redirect(f"{reverse('annotation:campaign_detail', args=[campaign.pk])}#review")


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def campaign_claims(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """A claims campaign's split, item by item: each explanation with its claims in place and,
    while the campaign is in review, a form to re-split it."""
    campaign = get_object_or_404(
        Campaign.objects.visible_to(request.user).filter(mode=Campaign.Mode.CLAIMS), pk=campaign_id
    )
    items = (
        campaign.items.exclude(kind=CampaignItem.Kind.ATTENTION)
        .select_related("explanation", "recommendation__item")
        .prefetch_related("claims")
        .order_by("kind", "id")
    )
    page = Paginator(items, CLAIMS_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = []
    for item in page:
        claims = list(item.claims.all())
        rows.append(
            {
                "item": item,
                "pieces": claim_pieces(item.explanation.text, claims),
                "claims": claims,
                "lines": "\n".join(claim.text for claim in claims),
            }
        )
    editable = campaign.status == Campaign.Status.REVIEW and request.user.has_perm("annotation.run_campaign")
    return render(
        request,
        "annotation/campaign_claims.html",
        {"campaign": campaign, "page": page, "rows": rows, "editable": editable},
    )


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def item_claims_split(request: HttpRequest, campaign_id: int, item_id: int) -> HttpResponse:
    """Re-split one pool item's explanation: the claims written one per line."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    item = get_object_or_404(campaign.items.select_related("explanation"), pk=item_id)
    try:
        claims = item_claims_set(item=item, pieces=request.POST.get("claims", "").splitlines())
    except CampaignError as exc:
        messages.error(request, f"Item {item.pk}: {exc}")
    else:
        messages.success(request, f"Item {item.pk}: {len(claims)} claim{'s' if len(claims) != 1 else ''}.")
    page = request.POST.get("page", "")
    query = f"?page={page}" if page.isdigit() else ""
    return redirect(f"{reverse('annotation:campaign_claims', args=[campaign.pk])}{query}#item-{item.pk}")


@require_POST
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
@permission_required("explanations.add_claimcheck", raise_exception=True)
def campaign_claim_check(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Start the automatic claim checker on a claims campaign's claims, one check per run."""
    campaign = get_object_or_404(
        Campaign.objects.visible_to(request.user).filter(mode=Campaign.Mode.CLAIMS), pk=campaign_id
    )
    form = CampaignClaimCheckForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(str(error) for errors in form.errors.values() for error in errors))
        return redirect("annotation:campaign_detail", campaign_id=campaign.pk)
    try:
        checks = campaign_claim_checks_start(campaign=campaign, created_by=request.user, **form.cleaned_data)
    except GenerationError as exc:
        messages.error(request, str(exc))
        return redirect("annotation:campaign_detail", campaign_id=campaign.pk)
    messages.success(request, f"Started {len(checks)} claim check{'s' if len(checks) != 1 else ''}.")
    return redirect("explanations:claim_check_list")


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def campaign_open_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Open a reviewed campaign to annotators."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    try:
        campaign_open(campaign=campaign)
    except CampaignError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Campaign open: annotators can start.")
    return redirect("annotation:campaign_detail", campaign_id=campaign.pk)


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def campaign_close_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Close the campaign: no more assignments or revisions; what was submitted stays."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    campaign_close(campaign=campaign)
    messages.success(request, "Campaign closed: no more assignments or revisions.")
    return redirect("annotation:campaign_detail", campaign_id=campaign.pk)


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def reference_item_add(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Add a gold or training item; a refusal comes back as a message on the campaign page."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    form = ReferenceItemForm(request.POST)
    if form.is_valid():
        explanation = Explanation.objects.filter(pk=form.cleaned_data["explanation_id"]).first()
        try:
            if explanation is None:
                raise CampaignError("No such explanation.")
            campaign_reference_item_add(
                campaign=campaign,
                explanation=explanation,
                kind=form.cleaned_data["kind"],
                accepted=form.cleaned_data["accepted"],
                feedback=form.cleaned_data["feedback"],
            )
        except CampaignError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Reference item added.")
    else:
        messages.error(request, "; ".join(str(error) for errors in form.errors.values() for error in errors))
    return redirect("annotation:campaign_detail", campaign_id=campaign.pk)


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def participant_delete(request: HttpRequest, campaign_id: int, participant_id: int) -> HttpResponse:
    """Delete an annotator and everything they left (``participant_data_delete``), when they ask
    the researchers rather than use the link on their own pages."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    participant = get_object_or_404(Participant, campaign=campaign, pk=participant_id)
    pseudonym = participant.pseudonym
    participant_data_delete(participant=participant)
    messages.success(request, f"{pseudonym} and all their data are deleted.")
    return redirect("annotation:campaign_detail", campaign_id=campaign.pk)


@require_POST
@login_required
@permission_required("annotation.run_campaign", raise_exception=True)
def participant_exclude(request: HttpRequest, campaign_id: int, participant_id: int) -> HttpResponse:
    """Exclude (``excluded=1``) or readmit an annotator: excluded answers leave every figure
    and export but stay stored, so a wrong exclusion can be undone."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    participant = get_object_or_404(Participant, campaign=campaign, pk=participant_id)
    participant_set_excluded(participant=participant, excluded=request.POST.get("excluded") == "1")
    return redirect("annotation:campaign_detail", campaign_id=campaign.pk)


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def campaign_export(request: HttpRequest, campaign_id: int, fmt: str) -> StreamingHttpResponse:
    """Every answer as CSV or JSON lines, streamed; excluded annotators only with
    ``?include_excluded=1``."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    rows = rating_export_rows(campaign, include_excluded=request.GET.get("include_excluded") == "1")
    # Streamed: an export of any size is written as it is read, in constant memory.
    response = StreamingHttpResponse(rating_export_lines(rows, fmt), content_type=EXPORT_CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-ratings.{fmt}"'
    return response


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def campaign_preferences_export(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The pairwise campaign's human preference per pair (JSON lines), as judges are tuned on."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    if campaign.mode != Campaign.Mode.PAIRWISE:
        return HttpResponse("only pairwise campaigns have preferences", status=400, content_type="text/plain")
    rows = campaign_preferences(campaign, include_flagged=request.GET.get("include_flagged") == "1")
    response = HttpResponse("".join(json.dumps(row) + "\n" for row in rows), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-preferences.jsonl"'
    return response


def _tune_on_campaign(
    request: HttpRequest,
    campaign_id: int,
    *,
    forms: dict[str, Callable[..., JudgeTuningOptionsForm]],
    start: Callable[..., AdapterTraining],
    template: str,
) -> HttpResponse:
    """A LoRA tuning on a campaign's answers, with the form of its mode (404 for a mode not in
    ``forms``): the form, and on a valid POST ``start`` with the campaign, the account and the
    form's choices."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
    if campaign.mode not in forms:
        raise Http404(f"{campaign.mode} campaigns do not give this kind of training data")
    form = forms[campaign.mode](request.POST or None, campaign=campaign)
    if request.method == "POST" and form.is_valid():
        options = form.options()
        choices = {key: value for key, value in form.cleaned_data.items() if key not in options}
        try:
            training = start(campaign=campaign, created_by=request.user, options=options, **choices)
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("explanations:adapter_detail", training_id=training.pk)
    return render(request, template, {"form": form, "campaign": campaign})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
@permission_required("explanations.add_adaptertraining", raise_exception=True)
def campaign_tune_judge(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Tune a pairwise judge with LoRA on this campaign's human preferences (admins)."""
    return _tune_on_campaign(
        request, campaign_id, forms={Campaign.Mode.PAIRWISE: JudgeTuningForm},
        start=campaign_judge_tuning_start, template="annotation/judge_tuning_form.html",
    )  # fmt: skip


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
@permission_required("explanations.add_adaptertraining", raise_exception=True)
def campaign_tune_generator(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Tune a generator with LoRA on this campaign's best explanations: a Likert campaign's
    best-rated, a claims campaign's best-supported (admins)."""
    return _tune_on_campaign(
        request, campaign_id,
        forms={Campaign.Mode.LIKERT: TeacherTuningForm, Campaign.Mode.CLAIMS: ClaimsTeacherTuningForm},
        start=campaign_teacher_start, template="annotation/teacher_tuning_form.html",
    )  # fmt: skip


# --- Annotators -----------------------------------------------------------------------------


def _participant(request: HttpRequest, campaign_id: int) -> Participant:
    """The signed-in account's participant row in the campaign, or 404."""
    if not request.user.is_authenticated:
        raise Http404
    return get_object_or_404(Participant.objects.select_related("campaign"), campaign_id=campaign_id, user=request.user)


@require_POST
@login_required
@permission_required("annotation.annotate", raise_exception=True)
def campaign_join(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """An annotator with a site account joins an open campaign (again: their existing row)."""
    campaign = get_object_or_404(Campaign.objects.open(), pk=campaign_id)
    participant_join(campaign=campaign, user=request.user)
    return redirect("annotation:next", campaign_id=campaign.pk)


@require_http_methods(["GET", "POST"])
def crowd_entry(request: HttpRequest, token: str) -> HttpResponse:
    """A crowd link: create or resume the pseudonymous participant and sign them in.

    Someone already signed in with a site account is asked first (a POST with the CSRF
    token), so a link embedded in another page cannot silently swap their session.
    """
    campaign = get_object_or_404(Campaign, public_token=token)
    if request.GET.get("assignmentId") == MTURK_PREVIEW:
        # An MTurk worker previewing the HIT: show what the task is, create nothing.
        return _crowd_frameable(
            render(
                request,
                "annotation/crowd_mturk.html",
                {"campaign": campaign, "preview": True, "instructions_html": render_markdown(campaign.instructions)},
            )
        )
    if "turkSubmitTo" in request.GET and request.GET.get("start") != "1":
        # Inside MTurk's frame the site's cookies are third-party (refused by browsers), so
        # the task opens in its own tab; the last page there submits the HIT.
        return _crowd_frameable(
            render(
                request,
                "annotation/crowd_mturk.html",
                {"campaign": campaign, "preview": False, "start_url": f"{request.get_full_path()}&start=1"},
            )
        )
    user = request.user
    if (
        request.method == "GET"
        and user.is_authenticated
        and not Participant.objects.filter(user_id=user.pk).exclude(crowd_hash="").exists()
    ):
        return render(request, "annotation/crowd_confirm.html", {"campaign": campaign})
    for platform, (id_parameter, kept) in CROWD_PARAMETERS.items():
        if id_parameter in request.GET:
            session = {name: request.GET.get(name, "") for name in kept}
            try:
                participant = crowd_participant_enter(
                    campaign=campaign, platform=platform, worker_id=request.GET[id_parameter], session=session
                )
            except CampaignError as exc:
                return render(request, "annotation/crowd_error.html", {"error": str(exc)}, status=400)
            login(request, participant.user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("annotation:next", campaign_id=campaign.pk)
    return render(request, "annotation/crowd_error.html", {"error": "The link lacks a participant id."}, status=400)


def _crowd_frameable(response: HttpResponse) -> HttpResponse:
    """MTurk shows an external question in a frame on its own pages: only these two pages
    (preview and start, which sign no one in) may be framed, and only by MTurk."""
    response.xframe_options_exempt = True
    # django-csp builds the site's policy with this one directive replaced.
    response._csp_replace = {"frame-ancestors": sorted(MTURK_FRAME_HOSTS)}  # type: ignore[attr-defined]
    return response


@require_GET
@login_required
def annotate_next(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Where the participant goes next: consent, their current item, or the end."""
    participant = _participant(request, campaign_id)
    campaign = participant.campaign
    if campaign.consent_text and participant.consented_at is None:
        return redirect("annotation:consent", campaign_id=campaign.pk)
    if campaign.is_first_person and campaign.is_open:
        if participant.elicited_at is None:
            return redirect("annotation:elicit", campaign_id=campaign.pk)
        if not participant.own_items.exists():
            return redirect("annotation:waiting", campaign_id=campaign.pk)
    assignment = campaign_assign_next(participant=participant)
    if assignment is None:
        return redirect("annotation:done", campaign_id=campaign.pk)
    return redirect("annotation:assignment", assignment_id=assignment.pk)


@require_http_methods(["GET", "POST"])
@login_required
def consent(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The consent page; only an explicit "yes" is recorded, and declining stores nothing."""
    participant = _participant(request, campaign_id)
    if request.method == "POST":
        if request.POST.get("consent") == "yes":
            participant_consent(participant=participant)
            return redirect("annotation:next", campaign_id=campaign_id)
        return render(request, "annotation/consent.html", {"participant": participant, "declined": True})
    return render(
        request,
        "annotation/consent.html",
        {
            "participant": participant,
            "consent_html": render_markdown(participant.campaign.consent_text),
            "instructions_html": render_markdown(participant.campaign.instructions),
        },
    )


def _first_person(request: HttpRequest, campaign_id: int) -> Participant:
    """The signed-in account's participant row in a first-person campaign, or 404."""
    participant = _participant(request, campaign_id)
    if not participant.campaign.is_first_person:
        raise Http404
    return participant


def _elicit_status(participant: Participant) -> dict[str, Any]:
    """What a rated title's row and the counter need: the participant's ratings and the scale."""
    campaign = participant.campaign
    ratings = elicited_ratings(participant)
    dataset = campaign.recommender_run.dataset
    return {
        "participant": participant,
        "campaign": campaign,
        "ratings": {item: int(value) for item, value in ratings.items()},
        "rated": list(Item.objects.filter(pk__in=list(ratings)).order_by("title", "id")),
        "n_rated": len(ratings),
        "needed": campaign.elicit_count,
        "scale": rating_scale(dataset),
        "implicit": dataset.is_implicit,
    }


def _elicit_context(participant: Participant, query: str = "") -> dict[str, Any]:
    """The whole elicitation page: the status and the titles offered, each with its rating."""
    context = _elicit_status(participant)
    items = elicitation_items(participant.campaign, query)
    for item in items:
        item.mine = context["ratings"].get(item.pk)  # type: ignore[attr-defined]
    return context | {
        "items": items,
        "query": query,
        "instructions_html": render_markdown(participant.campaign.instructions),
    }


@require_GET
@login_required
def elicit(request: HtmxHttpRequest, campaign_id: int) -> HttpResponse:
    """First person: the participant rates items of the catalogue (the most rated, or found by
    title) before they are recommended to. htmx asks for the item list alone (target ``items``)."""
    participant = _first_person(request, campaign_id)
    if participant.elicited_at is not None or not participant.campaign.is_open:
        return redirect("annotation:next", campaign_id=campaign_id)
    context = _elicit_context(participant, request.GET.get("q", ""))
    if request.htmx and request.htmx.target == "items":
        return render(request, "annotation/elicit.html#items", context)
    return render(request, "annotation/elicit.html", context)


@require_POST
@login_required
def elicit_rate(request: HtmxHttpRequest, campaign_id: int) -> HttpResponse:
    """Store one rating (an empty one takes it back); htmx gets the item's row and the updated
    count. A refused rating changes nothing and says why (400)."""
    participant = _first_person(request, campaign_id)
    raw_item, raw_rating = request.POST.get("item", ""), request.POST.get("rating", "")
    if not raw_item.isdigit() or not (raw_rating == "" or raw_rating.isdigit()):
        return HttpResponse("Choose an item and a rating.", status=400, content_type="text/plain")
    try:
        elicited_rating_set(
            participant=participant, item_id=int(raw_item), rating=int(raw_rating) if raw_rating else None
        )
    except CampaignError as exc:
        if request.htmx:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        messages.error(request, str(exc))
        return redirect("annotation:elicit", campaign_id=campaign_id)
    if not request.htmx:
        query = urlencode({"q": request.POST.get("q", "")[:100]})
        return redirect(f"{reverse('annotation:elicit', args=[campaign_id])}?{query}")
    context = _elicit_status(participant)  # the row and the counter only, not the list offered
    item = Item.objects.get(pk=int(raw_item))
    item.mine = context["ratings"].get(item.pk)  # type: ignore[attr-defined]
    return render(request, "annotation/_elicit_rated.html", context | {"item": item, "oob": True})


@require_POST
@login_required
def elicit_finish(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The participant's ratings are in: recommend to them and start their explanations."""
    participant = _first_person(request, campaign_id)
    try:
        first_person_recommend(participant=participant)
    except CampaignError as exc:
        messages.error(request, str(exc))
        return redirect("annotation:elicit", campaign_id=campaign_id)
    return redirect("annotation:waiting", campaign_id=campaign_id)


@require_GET
@login_required
def waiting(request: HtmxHttpRequest, campaign_id: int) -> HttpResponse:
    """First person: the participant's explanations being written, with progress; polled by
    htmx, which is sent on to the first item once they are ready."""
    participant = _first_person(request, campaign_id)
    if participant.elicited_at is None:
        return redirect("annotation:elicit", campaign_id=campaign_id)
    progress = first_person_progress(participant)
    if progress["finished"] and not progress["ready"]:
        first_person_items_create(participant=participant)
        progress = first_person_progress(participant)
    if progress["ready"]:
        next_url = reverse("annotation:next", args=[campaign_id])
        return HttpResponseClientRedirect(next_url) if request.htmx else redirect(next_url)
    context = {
        "participant": participant,
        "campaign": participant.campaign,
        "progress": progress,
        "retries_left": FIRST_PERSON_RETRIES - participant.generation_retries,
    }
    if request.htmx:
        return polled_partial(request, "annotation/waiting.html#progress", context, finished=progress["finished"])
    return render(request, "annotation/waiting.html", context)


@require_POST
@login_required
def waiting_retry(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """First person: nothing could be written for the participant; ask for it again
    (``first_person_retry``), or say why not."""
    participant = _first_person(request, campaign_id)
    try:
        first_person_retry(participant=participant)
    except CampaignError as exc:
        messages.error(request, str(exc))
    return redirect("annotation:waiting", campaign_id=campaign_id)


@require_http_methods(["GET", "POST"])
@login_required
def withdraw(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Ask, then delete everything the participant left in the campaign (``participant_data_delete``)."""
    participant = _participant(request, campaign_id)
    if request.method == "GET":
        return render(request, "annotation/withdraw.html", {"participant": participant})
    campaign_name = participant.campaign.name
    crowd = bool(participant.crowd_hash)
    participant_data_delete(participant=participant)
    if crowd:
        logout(request)  # the account made for the crowd link is gone with the data
    return render(request, "annotation/withdraw.html", {"withdrawn": True, "campaign_name": campaign_name})


@require_GET
@login_required
def done(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The end page, once the participant finished or the campaign closed. A finished crowd
    worker is sent back to their platform's completion URL (unless ``?stay=1``), an MTurk worker
    gets the form that submits the HIT; the page lists what they answered."""
    participant = _participant(request, campaign_id)
    campaign = participant.campaign
    if participant.completed_at is None and campaign.is_open:
        return redirect("annotation:next", campaign_id=campaign.pk)
    # Only a finished crowd worker goes back to the platform with the completion code.
    finished = participant.completed_at is not None
    submit_url = mturk_submit_url(participant) if finished else ""
    if (
        finished
        and participant.platform
        and not submit_url
        and campaign.completion_redirect_url()
        and request.GET.get("stay") != "1"
    ):
        return redirect(campaign.completion_redirect_url())
    answered = (
        Assignment.objects.of_user(request.user)
        .filter(campaign=campaign, status=Assignment.Status.SUBMITTED)
        .select_related("item__recommendation__item")
        .order_by("position")
    )
    return render(
        request,
        "annotation/done.html",
        {
            "participant": participant,
            "campaign": campaign,
            "answered": answered,
            "mturk_submit_url": submit_url,
            "mturk_assignment_id": participant.crowd_session.get("assignmentId", ""),
        },
    )


def _claims(assignment: Assignment) -> list[ItemClaim]:
    """The claims an assignment's page asks about: none outside claims mode or on an attention check."""
    if assignment.campaign.mode != Campaign.Mode.CLAIMS or assignment.item.kind == CampaignItem.Kind.ATTENTION:
        return []
    return list(assignment.item.claims.all())


def _claim_rows(form: AnswerForm) -> list[dict[str, Any]]:
    """Per claim: its number, label field, spans field and words, as the claims page shows them."""
    return [
        {
            "claim": claim,
            "number": claim.position + 1,
            "field": form[claim.field_name],
            "spans": form[f"spans_{claim.pk}"],
            "words": word_pieces(claim.text),
        }
        for claim in form.claims
    ]


def _page_context(assignment: Assignment, criteria: list[Criterion], form: AnswerForm | None = None) -> dict[str, Any]:
    """What the rating page and its htmx partial render; a submitted assignment's form shows
    its previous answers, so a revision starts from them."""
    campaign = assignment.campaign
    if form is None:
        form = AnswerForm(assignment=assignment, criteria=criteria, claims=_claims(assignment))
        if assignment.is_submitted:
            if form.claims:
                form.set_previous_labels(list(assignment.claim_labels.all()))
            else:
                form.set_previous(list(assignment.ratings.all()), criteria)
    context = {
        "assignment": assignment,
        "campaign": campaign,
        "form": form,
        "done": assignment.participant.n_done,
        "quota": campaign.items_per_annotator,
        "instructions_html": render_markdown(campaign.instructions),
        "is_pairwise": assignment.item.explanation_b_id is not None,
        "is_attention": assignment.item.kind == CampaignItem.Kind.ATTENTION,
        "is_training": assignment.item.kind == CampaignItem.Kind.TRAINING,
        "claim_rows": _claim_rows(form),
    } | task_context(assignment)
    if form.claims:
        context["explanation_claims"] = claim_pieces(assignment.item.explanation.text, form.claims)
    return context


@require_GET
@login_required
def assignment_detail(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """One of the annotator's own assignments; an expired one of an open campaign sends them on to
    their next item instead."""
    assignment = get_object_or_404(Assignment.objects.of_user(request.user).with_page_data(), pk=assignment_id)
    if assignment.status == Assignment.Status.EXPIRED and assignment.campaign.is_open:
        return redirect("annotation:next", campaign_id=assignment.campaign_id)
    criteria = list(assignment.campaign.criteria.all())
    return render(request, "annotation/annotate.html", _page_context(assignment, criteria))


# The submit's first read, hand-written as the rest of the submit path is (README,
# "Development"): the account's own assignment with its campaign and item, and the campaign's
# criteria in order, one row per criterion (one row with none, in claims mode).
_SUBMITTED = (Layout(Assignment, "a"), Layout(Campaign, "c"), Layout(CampaignItem, "ci"), Layout(Criterion, "cr"))


def _submitted_assignment(user: Any, assignment_id: int) -> tuple[Assignment, list[Criterion]]:
    """The signed-in account's assignment ``assignment_id`` (Http404 for anyone else's, as
    ``Assignment.objects.of_user``) with campaign and item, and the campaign's criteria. Without
    the participant: ``rating_submit`` reads it again, locked, and hands it on."""
    rows = select_models(
        f"SELECT {select_list(_SUBMITTED)} FROM {table(Assignment)} a"
        f" INNER JOIN {table(Participant)} p ON p.id = a.participant_id"
        f" INNER JOIN {table(Campaign)} c ON c.id = a.campaign_id"
        f" INNER JOIN {table(CampaignItem)} ci ON ci.id = a.item_id"
        f" LEFT JOIN {table(Criterion)} cr ON cr.campaign_id = c.id"
        " WHERE a.id = %s AND p.user_id = %s ORDER BY cr.position, cr.id",
        [assignment_id, user.pk],
        _SUBMITTED,
    )
    if not rows:
        raise Http404("No such assignment.")
    assignment, campaign, item, _ = rows[0]
    assignment.campaign, assignment.item = campaign, item
    criteria = [criterion for *_, criterion in rows if criterion is not None]
    for criterion in criteria:
        criterion.campaign = campaign
    return assignment, criteria


@require_POST
@login_required
def assignment_submit(request: HtmxHttpRequest, assignment_id: int) -> HttpResponse:
    """Store the answers (exactly once per ``submission_id``), then show feedback on a training
    item or move on to the next item."""
    assignment, criteria = _submitted_assignment(request.user, assignment_id)
    claims = _claims(assignment)
    form = AnswerForm(request.POST, assignment=assignment, criteria=criteria, claims=claims)
    if form.is_valid():
        try:
            result = rating_submit(
                assignment=assignment,
                answers=form.answers(),
                submission_id=form.cleaned_data["submission_id"],
                visible_seconds=form.visible_seconds(),
                criteria=criteria,
                spans=form.spans(),
                claims=claims or None,
                then_next=True,
            )
        except SubmitError as exc:
            form.add_error(None, str(exc))
        else:
            if result.feedback:
                context = _page_context(result.assignment, criteria, form) | {"feedback": result.feedback}
                template = "annotation/annotate.html#task" if request.htmx else "annotation/annotate.html"
                return render(request, template, context)
            return _to_next(request, result, criteria)
    # Invalid or refused: the answers stay on screen with the reason.
    context = _page_context(assignment, criteria, form)
    if request.htmx:
        return render(request, "annotation/annotate.html#task", context)
    return render(request, "annotation/annotate.html", context, status=400)


def _to_next(request: HtmxHttpRequest, result: SubmitResult, criteria: list[Criterion]) -> HttpResponse:
    """After a submit: swap the next item in place (htmx), or redirect to it."""
    campaign = result.assignment.campaign
    if result.next_claimed:
        following = result.following
    else:  # a repeated submission: the next item was not looked for
        result.assignment.participant.campaign = campaign
        following = campaign_assign_next(participant=result.assignment.participant)
    if following is None:
        done_url = reverse("annotation:done", args=[campaign.pk])
        return HttpResponseClientRedirect(done_url) if request.htmx else redirect(done_url)
    if not request.htmx:
        return redirect("annotation:assignment", assignment_id=following.pk)
    following.campaign = campaign  # the same campaign and criteria: no need to read them again
    response = render(request, "annotation/annotate.html#task", _page_context(following, criteria))
    return push_url(response, reverse("annotation:assignment", args=[following.pk]))
