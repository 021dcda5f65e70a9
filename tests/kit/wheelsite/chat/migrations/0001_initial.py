from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Presence",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("room", models.CharField(max_length=100)),
                ("reply_channel", models.CharField(max_length=200)),
                ("joined", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
