from django.contrib import admin

from annotation.models import Assignment, Campaign, ClaimLabel, Criterion, Participant, Rating


class CriterionInline(admin.TabularInline[Criterion, Campaign]):
    model = Criterion
    extra = 0


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = ["name", "mode", "status", "overlap", "items_per_annotator", "created_at"]
    list_filter = ["mode", "status"]
    search_fields = ["name"]
    inlines = [CriterionInline]
    # What the items were built from, and the status the site's close button keeps together
    # with closed_at, change only through the site's services; the admin edits text fields.
    readonly_fields = [
        "public_token", "recommender_run", "created_by", "closed_at",
        "generation_runs", "mode", "status", "sample", "sample_size", "seed", "overlap",
        "routing", "close_when_settled", "settled_at", "audience", "elicit_count", "first_person_k",
    ]  # fmt: skip


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin[Participant]):
    list_display = ["pseudonym", "campaign", "platform", "checks_passed", "checks_failed", "flagged", "excluded"]
    list_filter = ["campaign", "platform", "flagged", "excluded"]
    search_fields = ["pseudonym"]
    # The keyed hash is shown to no one: it only serves to recognise a returning worker.
    exclude = ["crowd_hash"]
    readonly_fields = [
        "campaign", "user", "pseudonym", "platform", "crowd_session", "dataset_user", "recommender_run", "elicited_at",
    ]  # fmt: skip


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin[Assignment]):
    list_display = ["pk", "campaign", "participant", "item", "status", "position", "submitted_at"]
    list_filter = ["campaign", "status"]
    list_select_related = ["campaign", "participant", "item"]
    raw_id_fields = ["participant", "item"]
    show_full_result_count = False


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin[Rating]):
    list_display = ["pk", "assignment", "criterion", "value", "choice", "updated_at"]
    list_filter = ["criterion__campaign"]
    raw_id_fields = ["assignment"]
    list_select_related = ["criterion"]
    show_full_result_count = False


@admin.register(ClaimLabel)
class ClaimLabelAdmin(admin.ModelAdmin[ClaimLabel]):
    list_display = ["pk", "assignment", "claim", "label", "updated_at"]
    list_filter = ["label", "assignment__campaign"]
    raw_id_fields = ["assignment", "claim"]
    show_full_result_count = False
