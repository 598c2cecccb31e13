from django.urls import path, re_path

from annotation import apis, views
from annotation.study import urls as study_urls

app_name = "annotation"

urlpatterns = [
    path("campaigns/", views.campaign_list, name="campaign_list"),
    path("campaigns/new/", views.campaign_create_view, name="campaign_create"),
    path("campaigns/<int:campaign_id>/", views.campaign_detail, name="campaign_detail"),
    path("campaigns/<int:campaign_id>/close/", views.campaign_close_view, name="campaign_close"),
    path("campaigns/<int:campaign_id>/privacy/", views.campaign_privacy, name="campaign_privacy"),
    path(
        "campaigns/<int:campaign_id>/privacy/<int:flag_id>/decide/",
        views.privacy_flag_decide_view,
        name="privacy_flag_decide",
    ),
    path("campaigns/<int:campaign_id>/claims/", views.campaign_claims, name="campaign_claims"),
    path("campaigns/<int:campaign_id>/claims/<int:item_id>/split/", views.item_claims_split, name="item_claims_split"),
    path("campaigns/<int:campaign_id>/claims/check/", views.campaign_claim_check, name="campaign_claim_check"),
    path("campaigns/<int:campaign_id>/open/", views.campaign_open_view, name="campaign_open"),
    path("campaigns/<int:campaign_id>/reference-items/", views.reference_item_add, name="reference_add"),
    path(
        "campaigns/<int:campaign_id>/participants/<int:participant_id>/exclude/",
        views.participant_exclude,
        name="participant_exclude",
    ),
    path(
        "campaigns/<int:campaign_id>/participants/<int:participant_id>/delete/",
        views.participant_delete,
        name="participant_delete",
    ),
    re_path(
        r"^campaigns/(?P<campaign_id>[0-9]+)/ratings\.(?P<fmt>csv|jsonl)$",
        views.campaign_export,
        name="campaign_export",
    ),
    path(
        "campaigns/<int:campaign_id>/preferences.jsonl",
        views.campaign_preferences_export,
        name="campaign_preferences",
    ),
    path("campaigns/<int:campaign_id>/tune-judge/", views.campaign_tune_judge, name="campaign_tune_judge"),
    path("campaigns/<int:campaign_id>/tune-generator/", views.campaign_tune_generator, name="campaign_tune_generator"),
    path("c/<str:token>/", views.crowd_entry, name="crowd_entry"),
    path("annotate/<int:campaign_id>/join/", views.campaign_join, name="join"),
    path("annotate/<int:campaign_id>/", views.annotate_next, name="next"),
    path("annotate/<int:campaign_id>/consent/", views.consent, name="consent"),
    path("annotate/<int:campaign_id>/done/", views.done, name="done"),
    path("annotate/<int:campaign_id>/elicit/", views.elicit, name="elicit"),
    path("annotate/<int:campaign_id>/elicit/rate/", views.elicit_rate, name="elicit_rate"),
    path("annotate/<int:campaign_id>/elicit/finish/", views.elicit_finish, name="elicit_finish"),
    path("annotate/<int:campaign_id>/waiting/", views.waiting, name="waiting"),
    path("annotate/<int:campaign_id>/waiting/retry/", views.waiting_retry, name="waiting_retry"),
    path("annotate/<int:campaign_id>/withdraw/", views.withdraw, name="withdraw"),
    path("annotate/items/<int:assignment_id>/", views.assignment_detail, name="assignment"),
    path("annotate/items/<int:assignment_id>/submit/", views.assignment_submit, name="submit"),
    path("api/campaigns/", apis.CampaignListApi.as_view(), name="api_campaigns"),
    path("api/campaigns/<int:campaign_id>/ratings/", apis.CampaignRatingListApi.as_view(), name="api_ratings"),
    path("api/assignments/", apis.AssignmentListApi.as_view(), name="api_assignments"),
    path("api/assignments/<int:assignment_id>/", apis.AssignmentDetailApi.as_view(), name="api_assignment"),
    # The study report's routes share this app's namespace (annotation:study, ...).
    *study_urls.urlpatterns,
]
