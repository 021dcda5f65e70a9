import json

from channels import Group
from django.db import models, transaction


class Post(models.Model):
    title = models.CharField(max_length=200)

    def __str__(self):
        return f"{self.pk}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        payload = {"text": json.dumps({"post": self.title})}
        transaction.on_commit(lambda: Group("posts").send(payload))
