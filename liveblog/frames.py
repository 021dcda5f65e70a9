"""Every frame the liveblog stream sends, built in one place (the README documents them).

Post frames carry `seq`, the liveblog's change number: a page passes the highest it has seen
without a gap as `since` when it reconnects."""

from .models import Liveblog, Post

POST_CREATED = "post.created"
POST_UPDATED = "post.updated"
POST_DELETED = "post.deleted"
LIVEBLOG_RENAMED = "liveblog.renamed"
LIVEBLOG_SYNCED = "liveblog.synced"
LIVEBLOG_DELETED = "liveblog-deleted"


def post_payload(post: Post) -> dict:
    return {
        "id": post.id,
        "body": post.body,
        "created": post.created.isoformat(),
        "updated": post.updated.isoformat(),
    }


def post_event(event: str, post: Post) -> dict:
    return {"type": event, "seq": post.seq, "post": post_payload(post)}


def post_deleted(post_id: int, *, seq: int) -> dict:
    return {"type": POST_DELETED, "seq": seq, "post": {"id": post_id}}


def liveblog_synced(seq: int) -> dict:
    """Ends a catch-up: the page now shows every change up to `seq`, whatever numbers the
    catch-up skipped (a post changed twice is sent once), and resumes its cursor from there."""
    return {"type": LIVEBLOG_SYNCED, "seq": seq}


def liveblog_renamed(liveblog: Liveblog) -> dict:
    """Its title or address changed: the page shows the title and reconnects to `stream` from now on."""
    return {
        "type": LIVEBLOG_RENAMED,
        "slug": liveblog.slug,
        "title": liveblog.title,
        "url": liveblog.get_absolute_url(),
        "stream": f"{liveblog.get_absolute_url()}stream/",
    }


def liveblog_deleted(slug: str) -> dict:
    # In the shape of the stream's errors (channels1_kit.websocket.ClientError), before the 4404.
    return {"error": LIVEBLOG_DELETED, "message": f"The liveblog {slug!r} was deleted."}
