# Implicit-feedback models (the rating at or above which a train interaction is a positive) and
# recommender runs imported from elsewhere (their kind, a name and the file's lineage).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0004_site_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="recommenderrun",
            name="positive_threshold",
            field=models.FloatField(
                blank=True,
                help_text="Implicit models on rated data: train ratings at or above this are positives "
                "(empty: every interaction is).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="recommenderrun",
            name="kind",
            field=models.CharField(
                choices=[("trained", "Trained here"), ("external", "Imported lists")], default="trained", max_length=10
            ),
        ),
        migrations.AddField(
            model_name="recommenderrun",
            name="name",
            field=models.CharField(blank=True, help_text="A name to find the run by (imported lists).", max_length=200),
        ),
        migrations.AddField(
            model_name="recommenderrun",
            name="source",
            field=models.JSONField(
                blank=True, default=dict, help_text="Imported lists: model label, file name, sha256, rows and layout."
            ),
        ),
    ]
