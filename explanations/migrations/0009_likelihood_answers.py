from django.db import migrations, models

ANSWER_MODES = [
    ("likelihood", "Likelihood: score every option after the answer prefix"),
    ("text", "Text: generate an answer and parse it strictly"),
]
FALLBACK_HELP = "Set when likelihood could not be used and answers were parsed as text instead, and why."


class Migration(migrations.Migration):
    dependencies = [
        ("explanations", "0008_generation_sample_random"),
    ]

    # Runs and probes that exist already were answered as text: they get "text", and only new
    # ones default to likelihood. The verdict and answer columns are nullable, so bulk inserts
    # that name their columns need no change.
    operations = [
        migrations.AddField(
            model_name="judgerun",
            name="answer_mode",
            field=models.CharField(choices=ANSWER_MODES, default="text", max_length=12),
        ),
        migrations.AlterField(
            model_name="judgerun",
            name="answer_mode",
            field=models.CharField(choices=ANSWER_MODES, default="likelihood", max_length=12),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="fallback",
            field=models.CharField(blank=True, help_text=FALLBACK_HELP, max_length=200),
        ),
        migrations.AddField(
            model_name="attributeprobe",
            name="answer_mode",
            field=models.CharField(choices=ANSWER_MODES, default="text", max_length=12),
        ),
        migrations.AlterField(
            model_name="attributeprobe",
            name="answer_mode",
            field=models.CharField(choices=ANSWER_MODES, default="likelihood", max_length=12),
        ),
        migrations.AddField(
            model_name="attributeprobe",
            name="fallback",
            field=models.CharField(blank=True, help_text=FALLBACK_HELP, max_length=200),
        ),
        migrations.AlterField(
            model_name="attributeprobe",
            name="options",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The labels offered (categorical targets; age bands' centres by likelihood).",
            ),
        ),
        migrations.AddField(
            model_name="judgeverdict",
            name="probabilities",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="probeanswer",
            name="probabilities",
            field=models.JSONField(blank=True, help_text="Label → probability, answered by likelihood.", null=True),
        ),
    ]
