"""What people typed is text on the page, never markup: a corpus of script payloads in chat
messages, liveblog posts, room and liveblog titles, shown live, replayed and server-rendered,
in headless Chromium against the real processes."""

import pytest

from tools.site_stack import login_cookie

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so
    expect = None

pytestmark = pytest.mark.browser

WAIT_MS = 20_000

PAYLOADS = [
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=window.__pwned=1>",
    "<svg onload=window.__pwned=1></svg>",
    '"><script>window.__pwned=1</script>',
    "</li><li class=message onmouseover=window.__pwned=1>forged",
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    "javascript:window.__pwned=1",
    "&lt;b&gt;already escaped&lt;/b&gt; &amp;",
    "{{7*7}} ${7*7} <%= 7*7 %>",
]
INJECTED = "script:not([src]), img, svg, iframe, b"
TITLE = "<b>Room</b><img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def door(stack):
    return stack.add_frontdoor(daphne=1)


@pytest.fixture
def page_for(browser, door):
    contexts = []

    def open_page(cookie: str = ""):
        context = browser.new_context(base_url=f"http://127.0.0.1:{door}")
        context.set_default_timeout(WAIT_MS)
        if cookie:
            context.add_cookies(
                [
                    {"name": name, "value": value, "url": f"http://127.0.0.1:{door}"}
                    for name, value in (part.split("=", 1) for part in cookie.split("; "))
                ]
            )
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()


def assert_inert(page, scope: str) -> None:
    assert page.locator(f"{scope} :is({INJECTED})").count() == 0, page.locator(scope).inner_html()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.errors == []


def test_script_payloads_in_chat_are_shown_as_typed_live_and_in_the_history(stack, users, page_for, door):
    slug = stack.django(
        "import json\nfrom chat import services\n"
        f"print(json.dumps(services.room_create(title={TITLE!r}, slug='escaping').slug))"
    )
    alice = page_for(login_cookie(f"http://127.0.0.1:{door}", "alice", users["alice"]))
    bob = page_for(login_cookie(f"http://127.0.0.1:{door}", "bob", users["bob"]))
    rooms = []
    for page in (alice, bob):
        page.goto("/chat/")
        expect(page.locator("#status")).to_have_attribute("data-state", "open")
        room = page.locator(f'.room[data-room="{slug}"]')
        expect(room.locator("strong")).to_have_text(TITLE)  # the server-rendered title
        room.locator("button.join").click()
        expect(room.locator(".conversation")).to_be_visible()
        rooms.append(room)
    alice_room, bob_room = rooms

    for payload in PAYLOADS:
        alice_room.locator("input[name=message]").fill(payload)
        alice_room.locator("input[name=message]").press("Enter")
        expect(bob_room.locator(".log .message").last).to_have_text(f"alice: {payload}")
    expected = [f"alice: {payload}" for payload in PAYLOADS]
    expect(bob_room.locator(".log .message")).to_have_text(expected)
    for page in (alice, bob):
        assert_inert(page, "#rooms")

    # A fresh page joins again and gets the same text from the room's history.
    bob.reload()
    expect(bob.locator("#status")).to_have_attribute("data-state", "open")
    bob.locator(f'.room[data-room="{slug}"] button.join').click()
    expect(bob.locator(f'.room[data-room="{slug}"] .log .message')).to_have_text(expected)
    assert_inert(bob, "#rooms")


def test_script_payloads_in_liveblog_posts_are_shown_as_typed_live_and_server_rendered(stack, page_for):
    stack.django(
        "from liveblog import services\n"
        f"blog = services.liveblog_create(title={TITLE!r}, slug='escaping')\n"
        f"services.post_create(liveblog=blog, body={PAYLOADS[0]!r})\n"
    )
    reader = page_for()
    reader.goto("/liveblog/escaping/")
    expect(reader.locator("h1")).to_have_text(TITLE)
    expect(reader.locator("#status")).to_have_attribute("data-state", "open")
    stack.django(
        "import json\nfrom liveblog import selectors, services\n"
        "blog = selectors.liveblog_get(slug='escaping')\n"
        f"for body in json.loads({__import__('json').dumps(PAYLOADS[1:])!r}):\n"
        "    services.post_create(liveblog=blog, body=body)\n"
    )
    newest_first = list(reversed(PAYLOADS))
    expect(reader.locator("#posts .post .body")).to_have_text(newest_first)
    assert_inert(reader, "#posts")

    reader.reload()  # now every post comes from the template
    expect(reader.locator("#posts .post .body")).to_have_text(newest_first)
    assert_inert(reader, "main")
