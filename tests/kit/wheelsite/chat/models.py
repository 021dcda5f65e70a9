from django.db import models


class Presence(models.Model):
    """One socket in one room."""

    room = models.CharField(max_length=100)
    reply_channel = models.CharField(max_length=200)
    joined = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.pk}"
