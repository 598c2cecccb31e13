"""Celery tasks of the annotation app: thin wrappers that call services by id."""

from celery import shared_task

from annotation.models import Campaign
from annotation.services.routing import routing_refresh


@shared_task(name="annotation.routing_refresh")
def routing_refresh_task(campaign_id: int) -> None:
    """Recompute a campaign's ranking, routing priorities and settled state (``routing_refresh``)."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        routing_refresh(campaign=campaign)
