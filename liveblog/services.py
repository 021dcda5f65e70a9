"""Writes to a liveblog. Each one tells the open pages after the transaction commits."""

from channels1_kit.websocket import broadcast_on_commit

from . import frames
from .models import Liveblog, Post


def _broadcast(liveblog: Liveblog, payload: dict) -> None:
    # A rollback must not announce a post that never existed, so wait for the commit. A
    # broadcast that fails (Redis down) is logged, and the save still succeeds: open pages
    # get the post from their catch-up (`since`) when they reconnect.
    broadcast_on_commit(liveblog.group_name, payload)


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValueError("A post needs a body.")
    return body


def post_create(*, liveblog: Liveblog, body: str) -> Post:
    post = Post.objects.create(liveblog=liveblog, body=_clean_body(body))
    _broadcast(liveblog, frames.post_event(frames.POST_CREATED, post))
    return post


def post_update(*, post: Post, body: str) -> Post:
    post.body = _clean_body(body)
    post.save(update_fields=["body", "updated"])
    _broadcast(post.liveblog, frames.post_event(frames.POST_UPDATED, post))
    return post


def post_delete(*, post: Post) -> None:
    post_id, liveblog = post.id, post.liveblog
    post.delete()
    _broadcast(liveblog, frames.post_deleted(post_id))


def liveblog_create(*, title: str, slug: str) -> Liveblog:
    return Liveblog.objects.create(title=title, slug=slug)
