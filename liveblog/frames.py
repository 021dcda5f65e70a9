"""Every frame the liveblog stream sends, built in one place (the README documents them)."""

from .models import Post

POST_CREATED = "post.created"
POST_UPDATED = "post.updated"
POST_DELETED = "post.deleted"


def post_payload(post: Post) -> dict:
    return {
        "id": post.id,
        "body": post.body,
        "created": post.created.isoformat(),
        "updated": post.updated.isoformat(),
    }


def post_event(event: str, post: Post) -> dict:
    return {"type": event, "post": post_payload(post)}


def post_deleted(post_id: int) -> dict:
    return {"type": POST_DELETED, "post": {"id": post_id}}
