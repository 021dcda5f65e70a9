from django.db import models
from django.urls import reverse

# The kit's name of the liveblog stream (channels1_kit.streams), whose key is the slug.
STREAM = "liveblog"


class Liveblog(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    created = models.DateTimeField(auto_now_add=True)
    # The number of the latest change to the liveblog's posts (a creation, an edit or a
    # deletion): every change takes the next one, so a page that remembers the last it saw
    # is sent exactly what it missed (`since`).
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("liveblog:detail", kwargs={"slug": self.slug})

    @property
    def group_name(self) -> str:
        """The channel-layer group of every socket watching this liveblog.

        From the primary key, so a slug edited in the admin keeps every open socket; a slug
        has no dot, so no slug-based name of old can be one of these."""
        return f"liveblog.id.{self.pk}"

    @property
    def legacy_group_name(self) -> str:
        """The group name from before group names came from primary keys (the kit closes its sockets)."""
        return f"liveblog.{self.slug}"


class Post(models.Model):
    liveblog = models.ForeignKey(Liveblog, related_name="posts", on_delete=models.CASCADE)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    # The liveblog's change that created the post, and the latest that changed it.
    created_seq = models.PositiveBigIntegerField(default=0)
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["liveblog", "seq"])]

    def __str__(self) -> str:
        return self.body[:60]


class PostDeletion(models.Model):
    """A tombstone: the post that the liveblog's change `seq` deleted, for pages away at the time."""

    liveblog = models.ForeignKey(Liveblog, related_name="deletions", on_delete=models.CASCADE)
    post_id = models.BigIntegerField()
    seq = models.PositiveBigIntegerField()
    deleted = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["liveblog", "seq"])]

    def __str__(self) -> str:
        return f"post {self.post_id} deleted from {self.liveblog}"
