"""The annotation services' error, in its own module so every service can raise it."""


class CampaignError(ValueError):
    """A campaign cannot be created or changed as asked; the message says why."""
