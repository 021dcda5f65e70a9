"""Writes to a liveblog. Each one tells the open pages after the transaction commits."""

from django.db import transaction
from django.db.models import F

from channels1_kit import streams
from channels1_kit.websocket import CLOSE_NOT_FOUND, broadcast_on_commit

from . import frames
from .models import STREAM, Liveblog, Post, PostDeletion


def _broadcast(liveblog: Liveblog, payload: dict) -> None:
    # A rollback must not announce a post that never existed, so wait for the commit. A
    # broadcast that fails (Redis down) is logged, and the save still succeeds: open pages
    # get the change from their catch-up (`since`) when they reconnect.
    broadcast_on_commit(liveblog.group_name, payload)


def _change_on_commit(liveblog: Liveblog, seq: int, payload: dict) -> None:
    """After the commit: the change to the liveblog's head and log for the daphnes (which catch up
    a reconnecting page from it), then to the open pages. In that order: a page a daphne accepts
    without this change is in the group before its broadcast."""
    slug, group = liveblog.slug, liveblog.group_name
    transaction.on_commit(lambda: streams.publish(STREAM, key=slug, group=group, seq=seq, frame=payload))
    _broadcast(liveblog, payload)


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValueError("A post needs a body.")
    return body


def _next_seq(liveblog: Liveblog) -> int:
    """Takes the liveblog's next change number, inside the caller's transaction.

    The UPDATE comes first so that it takes the write lock (SQLite) or the row lock
    (PostgreSQL) before any read: changes of one liveblog are numbered in commit order, and
    no two SQLite writers deadlock upgrading a read lock."""
    Liveblog.objects.filter(pk=liveblog.pk).update(seq=F("seq") + 1)
    liveblog.seq = Liveblog.objects.values_list("seq", flat=True).get(pk=liveblog.pk)
    return liveblog.seq


@transaction.atomic
def post_create(*, liveblog: Liveblog, body: str) -> Post:
    body = _clean_body(body)
    seq = _next_seq(liveblog)
    post = Post.objects.create(liveblog=liveblog, body=body, created_seq=seq, seq=seq)
    _change_on_commit(liveblog, seq, frames.post_event(frames.POST_CREATED, post))
    return post


@transaction.atomic
def post_update(*, post: Post, body: str) -> Post:
    post.body = _clean_body(body)
    post.seq = _next_seq(post.liveblog)
    post.save(update_fields=["body", "updated", "seq"])
    _change_on_commit(post.liveblog, post.seq, frames.post_event(frames.POST_UPDATED, post))
    return post


@transaction.atomic
def post_delete(*, post: Post) -> None:
    post_id, liveblog = post.id, post.liveblog
    seq = _next_seq(liveblog)
    PostDeletion.objects.create(liveblog=liveblog, post_id=post_id, seq=seq)
    post.delete()
    _change_on_commit(liveblog, seq, frames.post_deleted(post_id, seq=seq))


def liveblog_create(*, title: str, slug: str) -> Liveblog:
    return Liveblog.objects.create(title=title, slug=slug)


@transaction.atomic
def liveblog_update(*, liveblog: Liveblog, title: str, slug: str) -> Liveblog:
    """Renames it. Open pages keep their sockets (groups go by primary key) and are told the
    new address, which they reconnect to from then on."""
    old_slug = Liveblog.objects.values_list("slug", flat=True).get(pk=liveblog.pk)
    liveblog.title, liveblog.slug = title, slug
    liveblog.save(update_fields=["title", "slug"])
    if old_slug != slug:
        # Pages on the old address go to the workers (and are told it is gone); the first
        # connect on the new one publishes its head.
        group = liveblog.group_name
        transaction.on_commit(lambda: streams.forget(STREAM, key=old_slug, group=group))
    _broadcast(liveblog, frames.liveblog_renamed(liveblog))
    return liveblog


@transaction.atomic
def liveblog_delete(*, liveblog: Liveblog) -> None:
    """Deletes it with its posts; its open streams get an error frame and close with 4404.

    Each stream's disconnect then leaves the group; one whose disconnect is lost is the sweep's.
    With Redis down the pages find the liveblog gone (4404) when they reconnect."""
    group_name, slug = liveblog.group_name, liveblog.slug
    liveblog.delete()
    # No daphne accepts a page of it any more; then the open ones are told.
    transaction.on_commit(lambda: streams.forget(STREAM, key=slug, group=group_name))
    broadcast_on_commit(group_name, frames.liveblog_deleted(slug), close=CLOSE_NOT_FOUND)
