"""What a liveblog page holds is what the database holds, through real daphne, runworker and Redis:
catch-up of edits and deletions by change number, a renamed slug, a deleted liveblog, and the
deploy that moved the groups from slugs to primary keys."""

import signal

import pytest

from tests.integration.clients import ChangeCursor, Socket

pytestmark = pytest.mark.integration


def make_liveblog(stack, slug: str) -> None:
    stack.django(f"from liveblog import services\nservices.liveblog_create(title={slug.title()!r}, slug={slug!r})\n")


def change(stack, slug: str, code: str):
    """Runs `code` with `blog` (the liveblog), `services`, `Post` and `json` at hand."""
    return stack.django(
        "import json\n"
        "from liveblog import services, selectors\n"
        "from liveblog.models import Post\n"
        f"blog = selectors.liveblog_get(slug={slug!r})\n" + code
    )


def create_post(stack, slug: str, body: str) -> int:
    return change(stack, slug, f"print(json.dumps(services.post_create(liveblog=blog, body={body!r}).id))\n")


def stream(stack, slug: str, since=None, daphne: int = 0) -> Socket:
    query = "" if since is None else f"?since={since}"
    return Socket(stack.ws_url(f"/liveblog/{slug}/stream/{query}", daphne=daphne))


# Away: an edit, a deletion, a new post edited twice, on whichever worker takes each.
AWAY = (
    "services.post_update(post=Post.objects.get(id={edited}), body='final')\n"
    "services.post_delete(post=Post.objects.get(id={deleted}))\n"
    "new = services.post_create(liveblog=blog, body='new')\n"
    "services.post_update(post=new, body='new, edited')\n"
    "services.post_update(post=new, body='new, edited twice')\n"
)


def open_page_at_three_posts(stack, slug: str):
    make_liveblog(stack, slug)
    posts = [create_post(stack, slug, body) for body in ("kept", "draft", "mistake")]
    page = stream(stack, slug, since=0)
    cursor = ChangeCursor()
    for _ in range(3):
        cursor.saw(page.recv_until(lambda f: f.get("type") == "post.created"))
    cursor.saw(page.recv_until(lambda f: f.get("type") == "liveblog.synced"))
    assert cursor.value == 3
    page.close()
    return posts, cursor


def test_a_page_away_during_creations_edits_and_deletions_gets_each_in_order(stack):
    """Further behind than the liveblog's log in Redis (channels1_kit.streams keeps its last 100
    changes): a worker catches it up from the database, each post once, as it stands now."""
    (kept, edited, deleted), cursor = open_page_at_three_posts(stack, "changes")
    new = change(
        stack,
        "changes",
        AWAY.format(edited=edited, deleted=deleted)
        + "for n in range(100):\n    services.post_create(liveblog=blog, body=f'filler {n}')\n"
        "print(json.dumps(new.id))\n",
    )

    back = stream(stack, "changes", since=cursor.value, daphne=1)
    synced = back.recv_until(lambda f: f.get("type") == "liveblog.synced")
    replayed = [frame for frame in back.frames if frame.get("type", "").startswith("post.")]
    fillers = replayed[3:]
    replayed = replayed[:3]
    assert [(f["type"], f["post"]["id"]) for f in replayed] == [
        ("post.updated", edited),
        ("post.deleted", deleted),
        ("post.created", new),
    ]
    assert [f["post"].get("body") for f in replayed] == ["final", None, "new, edited twice"]
    assert [f["seq"] for f in replayed] == [4, 5, 8]
    assert [f["post"]["body"] for f in fillers] == [f"filler {n}" for n in range(100)]
    assert synced["seq"] == 108
    assert kept not in [f["post"]["id"] for f in replayed + fillers]
    for frame in [*replayed, *fillers, synced]:
        cursor.saw(frame)
    assert cursor.value == 108

    # Live again: the next change arrives with the next number.
    later = create_post(stack, "changes", "later")
    frame = back.recv_until(lambda f: f.get("type") == "post.created" and f["post"]["id"] == later)
    assert frame["seq"] == 109
    back.close()


def test_a_page_the_log_covers_is_caught_up_by_its_daphne_change_by_change(stack):
    """Within the liveblog's last changes: its daphne sends each change as it was broadcast, in
    order, with no worker running; the page's rule (a post frame applies if its seq is above the
    one shown for that post) leaves it as a worker's catch-up would."""
    (kept, edited, deleted), cursor = open_page_at_three_posts(stack, "changes-near")
    new = change(stack, "changes-near", AWAY.format(edited=edited, deleted=deleted) + "print(json.dumps(new.id))\n")

    for worker in stack.workers:
        worker.send_signal(signal.SIGSTOP)
    try:
        back = stream(stack, "changes-near", since=cursor.value, daphne=1)
        synced = back.recv_until(lambda f: f.get("type") == "liveblog.synced")
    finally:
        for worker in stack.workers:
            worker.send_signal(signal.SIGCONT)
    replayed = [frame for frame in back.frames if frame.get("type", "").startswith("post.")]
    assert [(f["type"], f["post"]["id"], f["seq"]) for f in replayed] == [
        ("post.updated", edited, 4),
        ("post.deleted", deleted, 5),
        ("post.created", new, 6),
        ("post.updated", new, 7),
        ("post.updated", new, 8),
    ]
    assert replayed[-1]["post"]["body"] == "new, edited twice"
    assert synced["seq"] == 8
    for frame in [*replayed, synced]:
        cursor.saw(frame)
    assert cursor.value == 8
    back.close()


def test_renaming_a_slug_keeps_every_open_stream_and_tells_it_the_new_address(stack):
    make_liveblog(stack, "before-rename")
    pages = [stream(stack, "before-rename", daphne=i % 2) for i in range(4)]

    change(stack, "before-rename", "services.liveblog_update(liveblog=blog, title='Renamed', slug='after-rename')\n")
    post = create_post(stack, "after-rename", "after the rename")

    for page in pages:
        renamed = page.recv_until(lambda f: f.get("type") == "liveblog.renamed")
        assert renamed["stream"] == "/liveblog/after-rename/stream/"
        assert page.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] == post
        page.close()
    # The new address serves; the old one is no liveblog any more.
    assert stream(stack, "after-rename", since=0).recv_until(lambda f: f.get("type") == "post.created")
    assert stream(stack, "before-rename").recv()["error"] == "liveblog-not-found"


def test_deleting_a_liveblog_closes_its_open_streams_with_4404(stack):
    make_liveblog(stack, "to-delete")
    pages = [stream(stack, "to-delete", daphne=i % 2) for i in range(2)]

    change(stack, "to-delete", "services.liveblog_delete(liveblog=blog)\n")

    for page in pages:
        assert page.recv()["error"] == "liveblog-deleted"
        assert page.close_code() == 4404


def test_streams_left_in_the_slug_groups_of_the_last_release_are_closed_with_4503_and_catch_up(stack):
    """At the deploy that moved groups to primary keys, open streams are in "liveblog.<slug>".

    They are put there as the old code did (moved out of the new group); then
    `close_legacy_groups` closes them, unless a worker's sweep (which runs the same every
    SOCKET_SWEEP_SECONDS) came first; and each page reconnects with its cursor and gets what
    it missed. (tests/project/test_sockets.py counts what the command closes.)"""
    make_liveblog(stack, "deployed")
    create_post(stack, "deployed", "before the deploy")
    page = stream(stack, "deployed", since=0)
    cursor = ChangeCursor()
    cursor.saw(page.recv_until(lambda f: f.get("type") == "post.created"))
    cursor.saw(page.recv_until(lambda f: f.get("type") == "liveblog.synced"))
    moved = change(
        stack,
        "deployed",
        "from channels1_kit.conf import channel_layer\n"
        "layer = channel_layer()\n"
        "members = layer.group_channels(blog.group_name)\n"
        "for channel in members:\n"
        "    layer.group_discard(blog.group_name, channel)\n"
        "    layer.group_add(blog.legacy_group_name, channel)\n"
        "print(json.dumps(len(members)))\n",
    )
    assert moved == 1
    # Sent to the new group only: the stream in the old one does not hear it.
    missed = create_post(stack, "deployed", "after the deploy")

    result = stack.manage("close_legacy_groups")

    assert result.stdout.strip().splitlines()[-1] in ('{"legacy_closed": 1}', '{"legacy_closed": 0}')
    assert page.close_code() == 4503
    # Closed once, by one or the other: the old group is empty now.
    assert (
        change(
            stack,
            "deployed",
            "from channels1_kit.conf import channel_layer\n"
            "print(json.dumps(len(channel_layer().group_channels(blog.legacy_group_name))))\n",
        )
        == 0
    )
    assert [f for f in page.frames if f.get("type") == "post.created" and f["post"]["id"] == missed] == []
    back = stream(stack, "deployed", since=cursor.value)
    assert back.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] == missed
    back.close()
