"""Headless Chromium against the real processes: the pages, their scripts and their WebSockets.

Every page is opened through a front door (tools/frontdoor.py), so that it and its
WebSocket share one origin, as behind nginx. Each browser context is one person.
"""

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a skip locally, a failure in CI
    expect = None

pytestmark = pytest.mark.browser

# An upper bound for anything to show up on a page, not an expectation of speed.
WAIT_MS = 20_000
# A dropped socket is retried after a growing delay (up to 10 s) by WebSocketBridge.
RECONNECT_WAIT_MS = 45_000

# Markup that would run if a page put it into the DOM as HTML.
XSS_BODY = "<img src=x onerror=window.__pwned=1>"
XSS_CHAT = "<script>window.__pwned=1</script><b>bold</b><img src=x onerror=window.__pwned=1>"
# How a post's time reads in the en-US locale the pages are opened in, live or not.
EN_US_DATETIME = re.compile(r"\d{1,2}/\d{1,2}/\d{4}, \d{1,2}:\d{2}:\d{2}\s[AP]M")


# Autouse, so that a missing browser is found out before the stack is started for nothing.
@pytest.fixture(autouse=True)
def needs_browser(browser):
    return browser


@pytest.fixture
def open_page(browser, stack, request, tmp_path):
    """open_page(name, port): a page in a browser context of its own, on the front door at port.

    Uncaught script errors fail the test; on a failure every page is screenshotted into tmp_path.
    """
    opened = []

    def open_(name: str, port: int):
        context = browser.new_context(base_url=f"http://127.0.0.1:{port}", locale="en-US", timezone_id="UTC")
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened.append((name, context, page, errors))
        return page

    yield open_

    report = getattr(request.node, "rep_call", None)
    failed = report is None or report.failed
    try:
        if failed:
            for name, _, page, _ in opened:
                path = tmp_path / f"{name}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot of {name} ({page.url}): {path}")
                except Exception as error:  # a crashed page must not hide the test's own failure
                    print(f"no screenshot of {name}: {error}")
            print(stack.logs())
        else:
            script_errors = {name: errors for name, _, _, errors in opened if errors}
            assert not script_errors, f"uncaught script errors: {script_errors}"
    finally:
        for _, context, _, _ in opened:
            context.close()


@pytest.fixture(scope="module")
def doors(stack):
    """One front door per daphne: doors[i] sends WebSockets to daphne i."""
    return [stack.add_frontdoor(daphne=i) for i in range(len(stack.daphne_ports))]


@pytest.fixture(scope="module")
def editor(stack, users):
    """The staff user, allowed to publish posts in the admin (staff alone may not): (name, password)."""
    stack.django(
        "from django.contrib.auth.models import Permission, User\n"
        "codenames = ['add_post', 'change_post', 'view_post']\n"
        "perms = Permission.objects.filter(content_type__app_label='liveblog', codename__in=codenames)\n"
        "User.objects.get(username='boss').user_permissions.add(*perms)\n"
    )
    return "boss", users["boss"]


def make_liveblog(stack, title: str, slug: str) -> str:
    return stack.django(
        "import json\n"
        "from liveblog import services\n"
        f"blog = services.liveblog_create(title={title!r}, slug={slug!r})\n"
        "print(json.dumps(blog.slug))"
    )


def create_post(stack, slug: str, body: str) -> int:
    return stack.django(
        "import json\n"
        "from liveblog import selectors, services\n"
        f"post = services.post_create(liveblog=selectors.liveblog_get(slug={slug!r}), body={body!r})\n"
        "print(json.dumps(post.id))"
    )


def log_in(page, path: str, username: str, password: str) -> None:
    page.goto(path)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("#login-form [type=submit]").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def open_live(page, path: str) -> None:
    """Opens a page and waits until its WebSocket is open; marks the window to detect a reload."""
    page.goto(path)
    expect(page.locator("#status")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    page.evaluate("window.__sameDocument = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"


def publish_in_admin(admin, liveblog_title: str, body: str) -> None:
    admin.goto("/admin/liveblog/post/add/")
    admin.select_option("#id_liveblog", label=liveblog_title)
    admin.fill("#id_body", body)
    admin.locator("input[name=_save]").click()
    expect(admin.locator(".messagelist .success")).to_be_visible()


# -- liveblog ---------------------------------------------------------------------------


def test_a_post_published_in_the_admin_appears_on_an_open_liveblog_page(open_page, stack, editor, doors):
    slug = make_liveblog(stack, "Admin to page", "admin-to-page")
    reader = open_page("reader", doors[0])
    open_live(reader, f"/liveblog/{slug}/")
    expect(reader.locator("#posts .post")).to_have_count(0)

    admin = open_page("admin", doors[1])
    log_in(admin, "/admin/login/?next=/admin/", *editor)
    expect(admin.locator("#user-tools")).to_contain_text(editor[0])
    publish_in_admin(admin, "Admin to page", "Kick-off at eight")

    first = reader.locator("#posts .post").first
    expect(first.locator(".body")).to_have_text("Kick-off at eight")
    expect(reader.locator("#posts .post")).to_have_count(1)
    assert_not_reloaded(reader)

    # Markup in a post is text, live and on a fresh page load alike.
    publish_in_admin(admin, "Admin to page", XSS_BODY)
    expect(reader.locator("#posts .post")).to_have_count(2)
    expect(reader.locator("#posts .post").first.locator(".body")).to_have_text(XSS_BODY)
    assert_not_reloaded(reader)
    assert reader.locator("#posts img").count() == 0
    assert reader.evaluate("typeof window.__pwned") == "undefined"

    reader.reload()
    expect(reader.locator("#posts .post").first.locator(".body")).to_have_text(XSS_BODY)
    assert reader.locator("#posts img").count() == 0
    assert reader.evaluate("typeof window.__pwned") == "undefined"


def test_a_dropped_liveblog_socket_reconnects_and_shows_what_it_missed(open_page, stack):
    slug = make_liveblog(stack, "Reconnect", "reconnect")
    before = create_post(stack, slug, "before the page opened")
    port = stack.add_frontdoor(daphne=0)
    door = stack.frontdoor_ports.index(port)

    reader = open_page("reader", port)
    sockets = []
    reader.on("websocket", lambda ws: sockets.append(ws.url))
    open_live(reader, f"/liveblog/{slug}/")
    # The page's cursor is the liveblog's change number: this liveblog's first change made `before`.
    assert sockets == [f"ws://127.0.0.1:{port}/liveblog/{slug}/stream/?since=1"]
    live = create_post(stack, slug, "while connected")
    expect(reader.locator(f"#post-{live} .body")).to_have_text("while connected")

    with stack.frontdoor_down(door):
        expect(reader.locator("#status")).to_have_attribute("data-state", "closed")
        missed = create_post(stack, slug, "while the socket was down")
        stack.django(
            "from liveblog import services\n"
            "from liveblog.models import Post\n"
            f"services.post_update(post=Post.objects.get(id={live}), body='edited while the socket was down')\n"
            f"services.post_delete(post=Post.objects.get(id={before}))\n"
        )

    expect(reader.locator(f"#post-{missed} .body")).to_have_text("while the socket was down", timeout=RECONNECT_WAIT_MS)
    expect(reader.locator("#status")).to_have_attribute("data-state", "open")
    assert_not_reloaded(reader)
    # It asked only for what came after the last change it had (the second), and shows the
    # missed post, the missed edit and the missed deletion, each post once.
    # (A later reconnect, if the page made one, asks from the catch-up's end, change 5.)
    stream = f"ws://127.0.0.1:{port}/liveblog/{slug}/stream/?since="
    assert sockets[1] == stream + "2"
    assert set(sockets[1:]) <= {stream + "2", stream + "5"}, sockets
    expect(reader.locator(f"#post-{live} .body")).to_have_text("edited while the socket was down")
    expect(reader.locator(f"#post-{before}")).to_have_count(0)
    ids = [int(i) for i in reader.locator("#posts .post").evaluate_all("items => items.map(i => i.dataset.id)")]
    assert ids == [missed, live]
    # The post the server put on the page reads like the ones that came over the socket.
    times = reader.locator("#posts .post time").all_text_contents()
    assert all(EN_US_DATETIME.fullmatch(time) for time in times), times


# -- chat -------------------------------------------------------------------------------


def make_room(stack, title: str, slug: str) -> str:
    return stack.django(
        "import json\n"
        "from chat import services\n"
        f"room = services.room_create(title={title!r}, slug={slug!r})\n"
        "print(json.dumps(room.slug))"
    )


def open_chat(open_page, name: str, port: int, password: str):
    page = open_page(name, port)
    log_in(page, "/accounts/login/?next=/chat/", name, password)
    expect(page.locator(".site-header .account")).to_contain_text(name)
    open_live(page, "/chat/")
    return page


def join(page, slug: str):
    room = page.locator(f'.room[data-room="{slug}"]')
    room.locator("button.join").click()
    expect(room.locator(".conversation")).to_be_visible()
    expect(room.locator("button.leave")).to_be_visible()
    expect(room.locator("button.join")).to_be_hidden()
    return room


def say(room, text: str) -> None:
    room.locator("input[name=message]").fill(text)
    room.locator("input[name=message]").press("Enter")


def test_two_people_on_different_daphnes_chat_in_a_room(open_page, stack, users, doors):
    slug = make_room(stack, "Browsers", "browsers")
    alice = open_chat(open_page, "alice", doors[0], users["alice"])
    bob = open_chat(open_page, "bob", doors[1], users["bob"])

    alice_room = join(alice, slug)
    bob_room = join(bob, slug)
    expect(alice_room.locator(".count")).to_have_text("2")
    expect(bob_room.locator(".count")).to_have_text("2")
    expect(alice_room.locator(".log .notice")).to_contain_text(["bob joined"])

    say(alice_room, "hello bob")
    expect(bob_room.locator(".log .message")).to_have_text(["alice: hello bob"])
    expect(alice_room.locator(".log .message")).to_have_text(["alice: hello bob"])
    expect(alice_room.locator("input[name=message]")).to_have_value("")

    say(alice_room, XSS_CHAT)
    expect(bob_room.locator(".log .message")).to_have_text(["alice: hello bob", f"alice: {XSS_CHAT}"])
    expect(alice_room.locator(".log .message")).to_have_count(2)
    for page in (alice, bob):
        assert page.locator(".log b, .log img, .log script").count() == 0
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert_not_reloaded(page)
        expect(page.locator("#errors")).to_have_text("")


def test_a_chat_page_rejoins_its_room_after_its_socket_drops(open_page, stack, users, doors):
    slug = make_room(stack, "Reconnecting", "reconnecting")
    port = stack.add_frontdoor(daphne=0)
    door = stack.frontdoor_ports.index(port)
    alice = open_chat(open_page, "alice", port, users["alice"])
    bob = open_chat(open_page, "bob", doors[1], users["bob"])
    alice_room, bob_room = join(alice, slug), join(bob, slug)
    expect(alice_room.locator(".count")).to_have_text("2")
    say(bob_room, "before the drop")
    expect(alice_room.locator(".log .message")).to_have_text(["bob: before the drop"])

    with stack.frontdoor_down(door):
        expect(alice.locator("#status")).to_have_attribute("data-state", "closed")
        # Sending now cannot work: the page says so and keeps the text.
        say(alice_room, "typed while offline")
        expect(alice.locator("#errors")).to_contain_text("Not connected")
        expect(alice_room.locator("input[name=message]")).to_have_value("typed while offline")
        expect(bob_room.locator(".count")).to_have_text("1")
        say(bob_room, "while you were away")
        expect(bob_room.locator(".log .message")).to_have_count(2)

    expect(alice.locator("#status")).to_have_attribute("data-state", "open", timeout=RECONNECT_WAIT_MS)
    expect(alice_room.locator(".log .message")).to_have_text(["bob: before the drop", "bob: while you were away"])
    expect(bob_room.locator(".count")).to_have_text("2")
    expect(alice_room.locator(".count")).to_have_text("2")
    alice_room.locator("input[name=message]").press("Enter")
    # The page sent it (a closed socket would have kept the text and said "Not connected").
    expect(alice_room.locator("input[name=message]")).to_have_value("")
    expect(bob_room.locator(".log .message")).to_have_text(
        ["bob: before the drop", "bob: while you were away", "alice: typed while offline"]
    )
    expect(alice.locator("#errors")).to_have_text("")
    assert_not_reloaded(alice)


# Every WebSocket a page makes, in window.__sockets: when it started (performance.now()), and
# whether it opened, failed (closed without opening) or closed after opening.
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  function Recorded(url, protocols) {
    const socket = new Native(url, protocols);
    const entry = { started: performance.now(), opened: false, failed: false, closed: false };
    window.__sockets.push(entry);
    socket.addEventListener("open", () => { entry.opened = true; });
    socket.addEventListener("close", () => {
      if (entry.opened) { entry.closed = true; } else { entry.failed = true; }
    });
    return socket;
  }
  Recorded.prototype = Native.prototype;
  Object.assign(Recorded, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Recorded;
})();
"""
# reconnecting-websocket's connection timeout: each attempt's timer closes the page's current
# socket this long after the attempt started, unless that attempt opened.
STALE_TIMER_MS = 4000


def test_a_page_back_soon_after_a_failed_attempt_is_not_dropped_again(open_page, stack, users):
    """The reconnecting-websocket in channels 1.1.8 left a failed attempt's connection timer armed,
    and it closed the next socket if that one opened within 4 s (channels1_kit/static/channels1_kit/live-socket.js)."""
    port = stack.add_frontdoor(daphne=0)
    door = stack.frontdoor_ports.index(port)
    page = open_page("alice", port)
    page.add_init_script(RECORD_SOCKETS)
    log_in(page, "/accounts/login/?next=/chat/", "alice", users["alice"])
    open_live(page, "/chat/")

    with stack.frontdoor_down(door):
        expect(page.locator("#status")).to_have_attribute("data-state", "closed")
        # A retry while the door is down: refused at once, its timer left running. The door is
        # back before the next retry (1.95-3.9 s later), which opens within that timer's 4 s.
        page.wait_for_function("window.__sockets.some(socket => socket.failed)", timeout=RECONNECT_WAIT_MS)

    expect(page.locator("#status")).to_have_attribute("data-state", "open", timeout=RECONNECT_WAIT_MS)
    # Until every failed attempt's timer has run out: the moment the page would have been dropped.
    page.wait_for_function(
        "wait => performance.now() > Math.max(...window.__sockets.filter(s => s.failed).map(s => s.started)) + wait",
        arg=STALE_TIMER_MS + 500,
    )
    sockets = page.evaluate("window.__sockets")
    back = [socket for socket in sockets[1:] if socket["opened"]]
    assert len(back) == 1 and not back[0]["closed"], sockets
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    assert_not_reloaded(page)
