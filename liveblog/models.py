from django.db import models
from django.urls import reverse


class Liveblog(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("liveblog:detail", kwargs={"slug": self.slug})

    @property
    def group_name(self) -> str:
        """The channel-layer group of every socket watching this liveblog."""
        return f"liveblog.{self.slug}"


class Post(models.Model):
    liveblog = models.ForeignKey(Liveblog, related_name="posts", on_delete=models.CASCADE)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.body[:60]
