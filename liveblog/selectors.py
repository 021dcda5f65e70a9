from itertools import chain
from typing import List, Optional

from django.db import connection

from . import frames
from .models import Liveblog, Post


def liveblog_get(*, slug: str) -> Optional[Liveblog]:
    return Liveblog.objects.filter(slug=slug).first()


def liveblog_head(*, slug: str) -> Optional[Liveblog]:
    """The liveblog called `slug` with only its primary key and seq loaded (enough for its group
    and a catch-up), or None.

    A stream's connect reads this on every reconnect; the ORM's building of the query was a third
    of a worker's time for a page that had missed nothing, so it is one plain statement."""
    meta = Liveblog._meta
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(meta.pk.column)}, {quote(meta.get_field('seq').column)} "
            f"FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('slug').column)} = %s",
            [slug],
        )
        row = cursor.fetchone()
    return None if row is None else Liveblog(pk=row[0], seq=row[1], slug=slug)


def liveblog_group_name(*, slug: str) -> Optional[str]:
    """The channel-layer group of the liveblog called `slug` now, without loading it."""
    pk = Liveblog.objects.filter(slug=slug).values_list("pk", flat=True).first()
    return None if pk is None else Liveblog(pk=pk).group_name


def liveblog_list() -> List[Liveblog]:
    return list(Liveblog.objects.all())


def post_list(*, liveblog: Liveblog, limit: int = 100) -> List[Post]:
    """The newest posts, newest first, as the page shows them."""
    return list(liveblog.posts.all()[:limit])


def changes_since(*, liveblog: Liveblog, since: int) -> List[dict]:
    """The frames of every change after the change `since`, in the order they were made.

    A post changed twice since then is sent once, as it is now, under its latest change's
    number (post.created if it was created after `since`, else post.updated); a post deleted
    since then is sent as post.deleted, from its tombstone. A page that had nothing (since 0)
    gets no tombstones: it never showed those posts."""
    posts = [
        frames.post_event(frames.POST_CREATED if post.created_seq > since else frames.POST_UPDATED, post)
        for post in liveblog.posts.filter(seq__gt=since)
    ]
    deletions = []
    if since > 0:
        deletions = [
            frames.post_deleted(post_id, seq=seq)
            for post_id, seq in liveblog.deletions.filter(seq__gt=since).values_list("post_id", "seq")
        ]
    return sorted(chain(posts, deletions), key=lambda frame: frame["seq"])


def liveblog_group_names() -> List[str]:
    """Every channel-layer group a liveblog stream joins."""
    return [liveblog.group_name for liveblog in Liveblog.objects.only("pk")]


def liveblog_legacy_group_names() -> List[str]:
    """The groups streams joined before group names came from primary keys."""
    return [liveblog.legacy_group_name for liveblog in Liveblog.objects.only("slug")]
