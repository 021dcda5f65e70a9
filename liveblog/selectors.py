from typing import List, Optional

from .models import Liveblog, Post


def liveblog_get(*, slug: str) -> Optional[Liveblog]:
    return Liveblog.objects.filter(slug=slug).first()


def liveblog_list() -> List[Liveblog]:
    return list(Liveblog.objects.all())


def post_list(*, liveblog: Liveblog, limit: int = 100) -> List[Post]:
    """The newest posts, newest first, as the page shows them."""
    return list(liveblog.posts.all()[:limit])


def post_list_since(*, liveblog: Liveblog, since_id: int) -> List[Post]:
    """Every post newer than since_id, oldest first, so a reconnecting page replays them in order."""
    return list(liveblog.posts.filter(id__gt=since_id).order_by("id"))


def liveblog_group_names() -> List[str]:
    """Every channel-layer group a liveblog stream joins."""
    return [liveblog.group_name for liveblog in Liveblog.objects.only("slug")]
