"""The liveblog through real daphne, runworker and Redis processes."""

import signal

import pytest
import websocket

from tests.integration.clients import Socket

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def liveblog(stack):
    return stack.django(
        "import json\n"
        "from liveblog import services\n"
        "blog = services.liveblog_create(title='Launch', slug='launch')\n"
        "print(json.dumps({'slug': blog.slug}))"
    )["slug"]


def create_post(stack, slug: str, body: str) -> int:
    return create_numbered_post(stack, slug, body)[0]


def create_numbered_post(stack, slug: str, body: str) -> tuple:
    """Publishes a post; returns its id and the liveblog's change number (seq) it took."""
    return tuple(
        stack.django(
            "import json\n"
            "from liveblog import services, selectors\n"
            f"post = services.post_create(liveblog=selectors.liveblog_get(slug={slug!r}), body={body!r})\n"
            "print(json.dumps([post.id, post.seq]))"
        )
    )


def test_a_new_post_reaches_every_open_stream_on_both_daphnes(stack, liveblog):
    sockets = [Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/", daphne=i % 2)) for i in range(6)]
    post_id = create_post(stack, liveblog, "Doors open")
    for sock in sockets:
        frame = sock.recv_until(lambda f: f.get("type") == "post.created")
        assert frame["post"] == {**frame["post"], "id": post_id, "body": "Doors open"}
        sock.close()


def test_a_reconnecting_page_gets_the_posts_it_missed(stack, liveblog):
    _, seen = create_numbered_post(stack, liveblog, "before")
    missed = [create_post(stack, liveblog, f"missed {n}") for n in range(3)]
    sock = Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={seen}"))
    replayed = [sock.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] for _ in missed]
    assert replayed == missed
    sock.close()


def test_an_unknown_liveblog_gets_an_error_frame_then_a_close(stack):
    sock = Socket(stack.ws_url("/liveblog/no-such-blog/stream/"))
    assert sock.recv()["error"] == "liveblog-not-found"
    assert sock.close_code(timeout=5) == 4404
    # The server ends the connection after its close frame.
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        sock.recv(timeout=5)


def test_edited_and_deleted_posts_reach_every_open_stream_on_both_daphnes(stack, liveblog):
    post_id, seen = create_numbered_post(stack, liveblog, "Keynote at 10")
    sockets = [Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={seen}", daphne=i % 2)) for i in range(4)]

    stack.django(
        "from liveblog import services\n"
        "from liveblog.models import Post\n"
        f"services.post_update(post=Post.objects.get(id={post_id}), body='Keynote at 11')\n"
    )
    for sock in sockets:
        frame = sock.recv_until(lambda f: f.get("type") == "post.updated")
        assert frame["post"] == {**frame["post"], "id": post_id, "body": "Keynote at 11"}

    stack.django(
        "from liveblog import services\n"
        "from liveblog.models import Post\n"
        f"services.post_delete(post=Post.objects.get(id={post_id}))\n"
    )
    for sock in sockets:
        assert sock.recv_until(lambda f: f.get("type") == "post.deleted") == {
            "type": "post.deleted",
            "seq": seen + 2,
            "post": {"id": post_id},
        }
        # Nothing replayed or created on the way: the stream opened after the post.
        assert [f for f in sock.drain(quiet=0.2) if f.get("type") == "post.created"] == []
        sock.close()
    still_there = stack.django(
        f"import json\nfrom liveblog.models import Post\nprint(json.dumps(Post.objects.filter(id={post_id}).exists()))"
    )
    assert still_there is False


def test_reconnecting_pages_are_accepted_and_caught_up_by_their_daphne_while_no_worker_runs(stack, liveblog):
    """channels1_kit.streams: each post's commit published it to the liveblog's log in Redis, so a
    page back at the latest post, or a few behind it, is put in the group, accepted and caught up
    by daphne. A page the log cannot catch up (here: ahead of the liveblog) waits for a worker."""
    _, seen = create_numbered_post(stack, liveblog, "the head")
    for worker in stack.workers:
        worker.send_signal(signal.SIGSTOP)
    try:
        pages = [Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={seen}", daphne=i)) for i in range(2)]
        post_id, latest = create_numbered_post(stack, liveblog, "while the workers are stopped")
        for page in pages:
            assert page.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] == post_id
            page.close()
        behind = Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={seen}", daphne=1))
        assert behind.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] == post_id
        assert behind.recv_until(lambda f: f.get("type") == "liveblog.synced")["seq"] == latest
        behind.close()
        with pytest.raises(websocket.WebSocketException):
            Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={latest + 5}"), timeout=2)
    finally:
        for worker in stack.workers:
            worker.send_signal(signal.SIGCONT)
    # The workers set a page ahead back to the liveblog's latest change.
    ahead = Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={latest + 5}"))
    assert ahead.recv_until(lambda f: f.get("type") == "liveblog.synced")["seq"] == latest
    ahead.close()
