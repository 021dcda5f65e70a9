"""A corpus of hostile frames, handshakes and requests against the real processes.

Every frame a worker sees gets an error frame with its own code (README's tables), the
socket keeps working, no process dies, and the database holds exactly what was validly
sent. Handshakes from other origins or to unknown paths are refused at once; requests
with huge headers, bad paths, too many files are refused by the server, not crashed on.
"""

import json
import socket
import threading
import time

import pytest
import requests
import websocket

from tests.integration.clients import Socket
from tests.integration.conftest import PRESENCE_GRACE_SECONDS, create_users, running
from tools.site_stack import Stack, login_cookie

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A site of this module's own: every hostile frame here comes on a fresh socket of the same
    few logins, faster than the per-client handshake budget lets one client open them (it has
    tests of its own, tests/integration/test_client_budgets.py), so that budget is lifted here,
    as a load test lifts it; the per-socket frame budget and everything else stay as shipped."""
    settings = {
        "PRESENCE_GRACE_SECONDS": str(PRESENCE_GRACE_SECONDS),
        "WEBSOCKET_HANDSHAKE_RATE": "0",
        "WEBSOCKET_CLIENT_SOCKETS": "0",
    }
    yield from running(Stack(tmp_path_factory.mktemp("hostile-stack"), settings=settings))


@pytest.fixture(scope="module")
def users(stack):
    return create_users(stack)


ROOM, OTHER_ROOM, STAFF_ROOM, BLOG = "hostile", "hostile-other", "hostile-staff", "hostile-blog"
STREAM = "/chat/stream/"

SCRIPT = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>"
SQL = "'); DROP TABLE chat_message; --"

# (id, frame sent after joining ROOM, the error code it must get)
CHAT_FRAMES = [
    ("invalid-json", '{"command": "join", "room"', "invalid-json"),
    ("trailing-garbage", '{"command": "join", "room": "hostile"} x', "invalid-json"),
    ("empty-text", "", "invalid-json"),
    ("nested-60k-deep", "[" * 60000, "invalid-json"),
    ("huge-integer", '{"command": "join", "room": "hostile", "since": ' + "9" * 5000 + "}", "invalid-json"),
    ("json-array", '["join", "hostile"]', "invalid-frame"),
    ("json-string", '"join"', "invalid-frame"),
    ("json-null", "null", "invalid-frame"),
    ("json-infinity", "1e999", "invalid-frame"),
    ("binary", b'{"command": "join", "room": "hostile"}', "binary-frame"),
    ("binary-garbage", bytes(range(256)), "binary-frame"),
    ("huge-text-100k", json.dumps({"command": "send", "room": ROOM, "message": "x" * 100_000}), "frame-too-large"),
    ("huge-binary-100k", b"\x00" * 100_000, "frame-too-large"),
    ("lone-surrogate-message", '{"command": "send", "room": "hostile", "message": "\\ud800"}', "invalid-text"),
    ("nul-in-message", '{"command": "send", "room": "hostile", "message": "a\\u0000b"}', "invalid-text"),
    ("nul-in-room", '{"command": "join", "room": "hostile\\u0000"}', "invalid-text"),
    ("missing-command", {"room": ROOM}, "invalid-command"),
    ("list-command", {"command": ["send"], "room": ROOM}, "invalid-command"),
    ("unknown-command", {"command": "drop_tables", "room": ROOM}, "unknown-command"),
    ("dunder-command", {"command": "__class__", "room": ROOM}, "unknown-command"),
    ("object-room", {"command": "join", "room": {"slug": ROOM}}, "invalid-room"),
    ("empty-room", {"command": "join", "room": ""}, "invalid-room"),
    ("unknown-room", {"command": "join", "room": "no-such-room"}, "room-not-found"),
    ("sql-in-room", {"command": "join", "room": "x' OR '1'='1"}, "room-not-found"),
    ("traversal-room", {"command": "join", "room": "../../etc/passwd"}, "room-not-found"),
    ("script-room", {"command": "join", "room": SCRIPT}, "room-not-found"),
    ("staff-room", {"command": "join", "room": STAFF_ROOM}, "room-forbidden"),
    ("send-staff-room", {"command": "send", "room": STAFF_ROOM, "message": "hi"}, "room-forbidden"),
    ("send-not-joined", {"command": "send", "room": OTHER_ROOM, "message": "hi"}, "not-in-room"),
    ("leave-not-joined", {"command": "leave", "room": OTHER_ROOM}, "not-in-room"),
    ("history-not-joined", {"command": "history", "room": OTHER_ROOM, "since": 0}, "not-in-room"),
    ("history-unknown-room", {"command": "history", "room": "no-such-room", "since": 0}, "room-not-found"),
    ("number-message", {"command": "send", "room": ROOM, "message": 12}, "invalid-message"),
    ("blank-message", {"command": "send", "room": ROOM, "message": "\n\t  "}, "message-empty"),
    ("long-message", {"command": "send", "room": ROOM, "message": "y" * 2001}, "message-too-long"),
    ("negative-since", {"command": "join", "room": ROOM, "since": -1}, "invalid-since"),
    ("float-since", {"command": "join", "room": ROOM, "since": 1.5}, "invalid-since"),
    ("string-since", {"command": "history", "room": ROOM, "since": "1"}, "invalid-since"),
    ("bool-since", {"command": "history", "room": ROOM, "since": True}, "invalid-since"),
    ("2**63-since", {"command": "history", "room": ROOM, "since": 2**63}, "invalid-since"),
]


@pytest.fixture(scope="module")
def hostile(stack, users):
    stack.django(
        "from chat import services\n"
        "from liveblog import services as blog\n"
        "from django.contrib.auth.models import Permission, User\n"
        f"services.room_create(title='Hostile', slug={ROOM!r})\n"
        f"services.room_create(title='Hostile other', slug={OTHER_ROOM!r})\n"
        f"services.room_create(title='Hostile staff', slug={STAFF_ROOM!r}, staff_only=True)\n"
        f"blog.liveblog_create(title='Hostile', slug={BLOG!r})\n"
        # boss may publish posts: the stream must still refuse to take one from him.
        "perms = Permission.objects.filter(content_type__app_label='liveblog', codename='add_post')\n"
        "User.objects.get(username='boss').user_permissions.add(*perms)\n"
    )
    cookies = {name: login_cookie(stack.http_url(""), name, password) for name, password in users.items()}
    # "sent": every message a test sent and saw echoed, so that the last test knows what the table must hold.
    return {"cookies": cookies, "worker_pids": [worker.pid for worker in stack.workers], "sent": []}


@pytest.fixture
def sockets(open_socket):
    return open_socket


def is_error(frame: dict) -> bool:
    return "error" in frame


def joined(stack, sockets, cookie, daphne: int = 0) -> Socket:
    sock = sockets(stack.ws_url(STREAM, daphne=daphne), cookie=cookie)
    sock.send({"command": "join", "room": ROOM})
    reply = sock.recv_until(lambda f: f.get("join") == ROOM or is_error(f))
    assert reply.get("join") == ROOM, reply
    return sock


def say(sock: Socket, text: str, sent: list) -> dict:
    sock.send({"command": "send", "room": ROOM, "message": text})
    echoed = sock.recv_until(lambda f: (f.get("type") == "message" and f["message"] == text) or is_error(f))
    if not is_error(echoed):
        sent.append(text)
    return echoed


def messages_in(stack, room: str) -> list:
    return stack.django(
        "import json\nfrom chat.models import Message\n"
        f"rows = Message.objects.filter(room__slug={room!r}).order_by('id')\n"
        "print(json.dumps(list(rows.values_list('text', flat=True))))"
    )


@pytest.mark.parametrize("case", CHAT_FRAMES, ids=[case[0] for case in CHAT_FRAMES])
def test_a_hostile_chat_frame_gets_its_error_code_and_the_socket_goes_on(stack, hostile, sockets, case):
    name, frame, code = case
    sock = joined(stack, sockets, hostile["cookies"]["bob"], daphne=len(name) % 2)
    if isinstance(frame, bytes):
        sock.send_binary(frame)
    else:
        sock.send(frame)
    error = sock.recv_until(is_error)
    assert error["error"] == code, error
    assert error["message"]
    assert say(sock, f"after {name}", hostile["sent"])["message"] == f"after {name}"


def test_script_and_sql_in_a_message_are_stored_and_sent_back_verbatim(stack, hostile, sockets):
    sock = joined(stack, sockets, hostile["cookies"]["alice"])
    other = joined(stack, sockets, hostile["cookies"]["bob"], daphne=1)
    for text in (SCRIPT, SQL, "‮ltr override ‭ and emoji 🦜 and \u200b zero width"):
        echoed = say(sock, text, hostile["sent"])
        assert echoed["message"] == text
        assert (
            other.recv_until(lambda f, t=text: f.get("type") == "message" and f["message"] == t)["id"] == echoed["id"]
        )
    assert messages_in(stack, ROOM)[-3:] == [SCRIPT, SQL, "‮ltr override ‭ and emoji 🦜 and \u200b zero width"]


def test_a_join_and_leave_flood_is_answered_frame_by_frame_then_rate_limited(stack, hostile, sockets):
    """Each join and leave changes the room's presence and tells its members: a socket gets 20 of
    them every 10 s (CHAT_RATE_LIMIT_JOINS), then "rate-limited", and nothing is left behind."""
    sock = joined(stack, sockets, hostile["cookies"]["alice"])  # the join counts: 19 more
    for pair in range(30):
        sock.send({"command": "leave", "room": ROOM})
        sock.send({"command": "join", "room": ROOM})
        if pair >= 12:
            # Within daphne's frame budget (30 at once with the join, then 10 a second: test_floods.py), so
            # that every frame reaches chat's own limit, and all inside its 10 s window.
            time.sleep(0.25)
    replies = []
    while len(replies) < 60:
        frame = sock.recv(timeout=30)
        if "leave" in frame or "join" in frame or is_error(frame):
            replies.append(frame)
    answered = [next(iter(frame)) if not is_error(frame) else frame["error"] for frame in replies]
    # Then every join is refused; every leave too, for a room the socket is no longer in.
    assert answered == ["leave", "join"] * 9 + ["leave"] + ["rate-limited", "not-in-room"] * 20 + ["rate-limited"]
    # The last change that went through was a leave: the socket is in no room now.
    sock.frames.clear()
    sock.send({"command": "send", "room": ROOM, "message": "still here?"})
    assert sock.recv_until(is_error)["error"] == "not-in-room"
    sock.close()
    # The only socket of this test: none is counted in the room (the kit's presence).
    in_room = stack.django(
        "import json\nfrom channels1_kit import presence\nfrom chat.models import Room\n"
        f"print(json.dumps(presence.sockets_in(Room.objects.get(slug={ROOM!r}).group_name)))"
    )
    assert in_room == []


def test_an_anonymous_socket_cannot_chat_whatever_it_sends(stack, hostile, sockets):
    sock = sockets(stack.ws_url(STREAM), cookie="sessionid=forged-session-key; csrftoken=x")
    assert sock.recv()["error"] == "login-required"
    before = messages_in(stack, ROOM)
    for frame in (
        {"command": "join", "room": ROOM},
        {"command": "send", "room": ROOM, "message": "anonymous"},
        {"command": "history", "room": ROOM, "since": 0},
    ):
        sock.send(frame)
        assert sock.recv()["error"] == "login-required"
    assert messages_in(stack, ROOM) == before


@pytest.mark.parametrize("user", ["anonymous", "alice", "boss"])
def test_the_liveblog_stream_takes_no_post_from_anyone(stack, hostile, sockets, user):
    cookie = None if user == "anonymous" else hostile["cookies"][user]
    sock = sockets(stack.ws_url(f"/liveblog/{BLOG}/stream/"), cookie=cookie)
    for frame in ({"command": "post", "body": "posted over the stream"}, "not json", SCRIPT):
        sock.send(frame)
        assert sock.recv()["error"] == "read-only"
    sock.send_binary(b"\x00\x01")
    assert sock.recv()["error"] == "read-only"
    count = stack.django(
        "import json\nfrom liveblog.models import Post\n"
        f"print(json.dumps(Post.objects.filter(liveblog__slug={BLOG!r}).count()))"
    )
    assert count == 0


@pytest.mark.parametrize(
    "query",
    ["since=abc", "since=-5", "since=99999999999999999999999", "since=%ff%fe", "since=1e3", "since=%00", "since=%2B5"],
)
def test_a_bad_since_is_an_error_frame_and_the_stream_stays_live(stack, hostile, sockets, query):
    sock = sockets(stack.ws_url(f"/liveblog/{BLOG}/stream/?{query}"))
    assert sock.recv()["error"] == "invalid-since"
    post_id = stack.django(
        "import json\nfrom liveblog import selectors, services\n"
        f"print(json.dumps(services.post_create(liveblog=selectors.liveblog_get(slug={BLOG!r}), body='live').id))"
    )
    assert sock.recv_until(lambda f: f.get("type") == "post.created")["post"]["id"] == post_id
    stack.django(
        "from liveblog.models import Post\nfrom liveblog import services\n"
        f"services.post_delete(post=Post.objects.get(id={post_id}))"
    )


def handshake_status(url: str, **options) -> int:
    try:
        ws = websocket.create_connection(url, timeout=15, **options)
    except websocket.WebSocketBadStatusException as error:
        return error.status_code
    ws.close()
    return 101


@pytest.mark.parametrize(
    "path, options",
    [
        (STREAM, {"origin": "http://evil.example"}),
        (STREAM, {"origin": "null"}),
        (STREAM, {"suppress_origin": True}),
        (STREAM, {"origin": "http://127.0.0.1.evil.example"}),
        (f"/liveblog/{BLOG}/stream/", {"origin": "https://evil.example"}),
        ("/no/such/stream/", {}),
        ("/liveblog/%3Cscript%3E/stream/", {}),
        ("/liveblog/../chat/stream/", {"origin": "http://evil.example"}),
    ],
    ids=[
        "evil-origin",
        "null-origin",
        "no-origin",
        "suffix-origin",
        "evil-origin-liveblog",
        "unknown-path",
        "script-slug",
        "dotdot",
    ],
)
def test_handshakes_from_other_origins_or_to_unknown_paths_are_refused(stack, hostile, path, options):
    cookie = hostile["cookies"]["alice"]
    assert handshake_status(stack.ws_url(path), header=[f"Cookie: {cookie}"], **options) == 403


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(request)
        chunks = []
        while True:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(response: bytes):
    """The response's status, or "closed" when the server hung up without one."""
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else "closed"


def get_status(url: str, **kwargs):
    try:
        return requests.get(url, timeout=30, **kwargs).status_code
    except requests.ConnectionError:
        return "closed"


def test_hostile_http_requests_are_refused_by_the_servers_not_crashed_on(stack, hostile):
    daphne, gunicorn = stack.daphne_ports[0], stack.gunicorn_port
    huge_header = b"X-Junk: " + b"a" * 100_000 + b"\r\n"
    results = {
        "daphne-huge-header": status_of(
            raw_http(
                daphne, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + huge_header + b"\r\n"
            )
        ),
        "gunicorn-huge-header": status_of(
            raw_http(
                gunicorn, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + huge_header + b"\r\n"
            )
        ),
        "daphne-non-ascii-path": status_of(
            raw_http(daphne, b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        ),
        "daphne-bad-host": status_of(
            raw_http(daphne, b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        ),
        "daphne-long-query": get_status(f"http://127.0.0.1:{daphne}/healthz?q={'z' * 10_000}"),
        "daphne-huge-query": get_status(f"http://127.0.0.1:{daphne}/healthz?q={'z' * 50_000}"),
        "gunicorn-invalid-utf8-path": requests.get(stack.http_url("/liveblog/%ff%fe/"), timeout=10).status_code,
        "gunicorn-long-accept-language": requests.get(
            stack.http_url("/"), headers={"Accept-Language": "en;q=0.9," * 600}, timeout=10
        ).status_code,
        # With a CSRF cookie, the CSRF check reads the body: Django parses every part.
        "gunicorn-150-files": requests.post(
            stack.http_url("/accounts/login/"),
            files=[("f", (f"f{n}.txt", b"x")) for n in range(150)],
            cookies={"csrftoken": "a" * 64},
            timeout=30,
        ).status_code,
        "gunicorn-100-files": requests.post(
            stack.http_url("/accounts/login/"),
            files=[("f", (f"f{n}.txt", b"x")) for n in range(100)],
            cookies={"csrftoken": "a" * 64},
            timeout=30,
        ).status_code,
        "gunicorn-log-injection": requests.get(stack.http_url("/nope%0Aforged%1B[31m"), timeout=10).status_code,
    }
    assert results == {
        # Twisted drops a request whose headers pass 16 KiB; gunicorn answers 431.
        "daphne-huge-header": "closed",
        "gunicorn-huge-header": 431,
        "daphne-non-ascii-path": 400,
        "daphne-bad-host": 400,
        "daphne-long-query": 200,
        "daphne-huge-query": "closed",
        "gunicorn-invalid-utf8-path": 404,
        "gunicorn-long-accept-language": 200,
        "gunicorn-150-files": 400,
        # 100 files are parsed (then refused by the CSRF check: the token is not the cookie's).
        "gunicorn-100-files": 403,
        "gunicorn-log-injection": 404,
    }
    log = stack.gunicorn.log_path.read_text(errors="replace")
    # The path's newline and escape were written out, not obeyed: no forged line begins.
    assert "Not Found: /nope\\nforged\\x1b[31m" in log
    assert "\nforged" not in log
    assert all(d.alive() for d in stack.daphnes) and stack.gunicorn.alive()


def test_many_sockets_flooding_at_once_leave_every_worker_alive(stack, hostile):
    cookie = hostile["cookies"]["bob"]
    errors = []

    def flood(index: int) -> None:
        try:
            sock = Socket(stack.ws_url(STREAM, daphne=index % 2), cookie=cookie)
            # 28 at once: within daphne's frame budget (30 at once, test_floods.py), so that
            # every frame reaches a worker, which is what this test is about; and 3 such sockets
            # of one login on each daphne stay within its client frame budget (100 at once):
            # 4 went over it whenever their floods fell within the same 0.6 s.
            for n in range(28):
                sock.send(["x", n] if n % 2 else "{" * n)
            got = [sock.recv(timeout=30)["error"] for _ in range(28)]
            if set(got) - {"invalid-frame", "invalid-json"}:
                errors.append(got)
            sock.close()
        except Exception as error:  # collected, then asserted on
            errors.append(repr(error))

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_after_the_corpus_no_worker_died_and_the_rows_are_what_was_validly_sent(stack, hostile):
    assert [worker.pid for worker in stack.workers] == hostile["worker_pids"]
    assert all(worker.alive() for worker in stack.workers), stack.logs()
    # Exactly what the tests sent and saw echoed, in order, unchanged: nothing a refused
    # frame carried, nothing altered on the way.
    assert messages_in(stack, ROOM) == hostile["sent"]
    tables = stack.django(
        "import json\nfrom django.db import connection\n"
        "print(json.dumps(sorted(connection.introspection.table_names())))"
    )
    assert {"chat_message", "chat_room", "liveblog_post"} <= set(tables)
    assert messages_in(stack, STAFF_ROOM) == []
