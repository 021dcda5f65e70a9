"""The liveblog through real daphne, runworker and Redis processes."""

import pytest

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
    return stack.django(
        "import json\n"
        "from liveblog import services, selectors\n"
        f"post = services.post_create(liveblog=selectors.liveblog_get(slug={slug!r}), body={body!r})\n"
        "print(json.dumps(post.id))"
    )


def test_a_new_post_reaches_every_open_stream_on_both_daphnes(stack, liveblog):
    sockets = [Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/", daphne=i % 2)) for i in range(6)]
    post_id = create_post(stack, liveblog, "Doors open")
    for sock in sockets:
        frame = sock.recv_until(lambda f: f.get("type") == "post.created")
        assert frame["post"] == {**frame["post"], "id": post_id, "body": "Doors open"}
        sock.close()


def test_a_reconnecting_page_gets_the_posts_it_missed(stack, liveblog):
    first = create_post(stack, liveblog, "before")
    missed = [create_post(stack, liveblog, f"missed {n}") for n in range(3)]
    sock = Socket(stack.ws_url(f"/liveblog/{liveblog}/stream/?since={first}"))
    replayed = [sock.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] for _ in missed]
    assert replayed == missed
    sock.close()


def test_an_unknown_liveblog_gets_an_error_frame_then_a_close(stack):
    sock = Socket(stack.ws_url("/liveblog/no-such-blog/stream/"))
    assert sock.recv()["error"] == "liveblog-not-found"
    with pytest.raises(Exception):
        sock.recv(timeout=5)
    assert not sock.connected
