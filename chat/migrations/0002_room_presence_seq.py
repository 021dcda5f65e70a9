from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="presence_seq",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
    ]
