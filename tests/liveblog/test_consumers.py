"""liveblog.consumers through the project routing: subscribe, catch up, refuse what is wrong."""

from unittest import mock

from channels.asgi import channel_layers
from channels.test import TransactionChannelTestCase
from django.test import override_settings

from liveblog import consumers, services
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient


def post_frames(frames: list) -> list:
    return [frame for frame in frames if frame["type"].startswith("post.")]


@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class LiveblogStreamTests(TransactionChannelTestCase):
    def setUp(self):
        self.liveblog = services.liveblog_create(title="Launch", slug="launch")

    def open_stream(self, query: str = "") -> StreamClient:
        page = StreamClient(f"/liveblog/launch/stream/{query}")
        page.connect()  # fails unless the consumer accepted
        return page

    def test_an_open_stream_gets_new_edited_and_deleted_posts(self):
        page = self.open_stream()
        self.assertEqual(page.frames(), [])

        post = services.post_create(liveblog=self.liveblog, body="Doors open")
        services.post_update(post=post, body="Doors are open")
        post_id = post.id
        services.post_delete(post=post)

        frames = page.frames()
        self.assertEqual([f["type"] for f in frames], ["post.created", "post.updated", "post.deleted"])
        self.assertEqual([f["post"]["id"] for f in frames], [post_id] * 3)
        self.assertEqual(frames[1]["post"]["body"], "Doors are open")

    def test_the_stream_is_subscribed_before_its_handshake_completes(self):
        subscribed_at_accept = []
        real_accept = consumers.accept

        def accept(reply_channel):
            members = channel_layers["default"].group_channels(self.liveblog.group_name)
            subscribed_at_accept.append(reply_channel.name in members)
            real_accept(reply_channel)

        with mock.patch.object(consumers, "accept", accept):
            self.open_stream()

        # Daphne completes the handshake on accept: an edit made right after must reach the page.
        self.assertEqual(subscribed_at_accept, [True])

    def test_since_replays_only_the_newer_posts_oldest_first(self):
        first = services.post_create(liveblog=self.liveblog, body="before")
        missed = [services.post_create(liveblog=self.liveblog, body=f"missed {n}") for n in range(3)]

        page = self.open_stream(f"?since={first.seq}")

        *frames, synced = page.frames()
        self.assertEqual(synced, {"type": "liveblog.synced", "seq": missed[-1].seq})
        self.assertEqual([f["type"] for f in frames], ["post.created"] * 3)
        self.assertEqual([f["post"]["id"] for f in frames], [post.id for post in missed])
        self.assertEqual([f["post"]["body"] for f in frames], ["missed 0", "missed 1", "missed 2"])

    def test_since_replays_creations_edits_and_deletions_in_the_order_they_were_made(self):
        kept = services.post_create(liveblog=self.liveblog, body="kept")
        edited = services.post_create(liveblog=self.liveblog, body="first draft")
        deleted = services.post_create(liveblog=self.liveblog, body="a mistake")
        cursor = self.liveblog.seq
        # While the page is away: an edit, a deletion, a new post edited twice, a new post deleted.
        services.post_update(post=edited, body="second draft")
        deleted_id = deleted.id
        services.post_delete(post=deleted)
        new = services.post_create(liveblog=self.liveblog, body="new")
        services.post_update(post=new, body="new, edited")
        services.post_update(post=new, body="new, edited twice")
        short_lived = services.post_create(liveblog=self.liveblog, body="gone at once")
        short_lived_id = short_lived.id
        services.post_delete(post=short_lived)

        *frames, synced = self.open_stream(f"?since={cursor}").frames()

        # Numbers the catch-up skipped (the first edits of `new`) are covered by the synced frame.
        self.assertEqual(synced, {"type": "liveblog.synced", "seq": self.liveblog.seq})
        self.assertEqual(
            [(f["type"], f["post"]["id"]) for f in frames],
            [
                ("post.updated", edited.id),
                ("post.deleted", deleted_id),
                ("post.created", new.id),
                ("post.deleted", short_lived_id),
            ],
        )
        self.assertEqual([f["seq"] for f in frames], sorted(f["seq"] for f in frames))
        self.assertEqual(frames[0]["post"]["body"], "second draft")
        self.assertEqual(frames[2]["post"]["body"], "new, edited twice")
        self.assertNotIn(kept.id, [f["post"]["id"] for f in frames])
        # Caught up: from the synced seq, nothing more.
        self.assertEqual(self.open_stream(f"?since={synced['seq']}").frames(), [])

    def test_a_cursor_ahead_of_the_liveblog_is_set_back(self):
        services.post_create(liveblog=self.liveblog, body="one")
        self.assertEqual(self.open_stream("?since=99").frames(), [{"type": "liveblog.synced", "seq": 1}])

    def test_a_page_that_had_nothing_gets_the_posts_but_no_tombstones(self):
        gone = services.post_create(liveblog=self.liveblog, body="gone")
        services.post_delete(post=gone)
        post = services.post_create(liveblog=self.liveblog, body="here")

        frames = post_frames(self.open_stream("?since=0").frames())

        self.assertEqual([(f["type"], f["post"]["id"]) for f in frames], [("post.created", post.id)])

    def test_a_renamed_liveblog_keeps_its_streams_and_tells_them_the_new_address(self):
        page = self.open_stream()

        services.liveblog_update(liveblog=self.liveblog, title="Launch day", slug="launch-day")
        renamed = page.frame()
        post = services.post_create(liveblog=self.liveblog, body="after the rename")

        self.assertEqual(renamed["type"], "liveblog.renamed")
        self.assertEqual(renamed["stream"], "/liveblog/launch-day/stream/")
        self.assertEqual(renamed["title"], "Launch day")
        self.assertEqual(page.frame()["post"]["id"], post.id)

    def test_a_deleted_liveblog_closes_its_streams_with_4404(self):
        page = self.open_stream()

        services.liveblog_delete(liveblog=self.liveblog)

        content = page.next_content()
        self.assertEqual(content["close"], 4404)
        self.assertIn('"error":"liveblog-deleted"', content["text"])

    def test_since_zero_or_no_since_replays_every_post(self):
        posts = [services.post_create(liveblog=self.liveblog, body=f"post {n}") for n in range(2)]

        for query in ["?since=0", ""]:
            frames = post_frames(self.open_stream(query).frames())
            self.assertEqual([f["post"]["id"] for f in frames], [p.id for p in posts])

    def test_a_stream_that_caught_up_still_gets_new_posts(self):
        old = services.post_create(liveblog=self.liveblog, body="old")
        page = self.open_stream(f"?since={old.seq}")
        self.assertEqual(page.frames(), [])

        new = services.post_create(liveblog=self.liveblog, body="new")

        self.assertEqual(page.frame()["post"]["id"], new.id)

    def test_an_invalid_since_is_an_error_but_the_stream_stays_subscribed(self):
        services.post_create(liveblog=self.liveblog, body="old")
        for bad in ["abc", "-1", "1.5"]:
            with self.subTest(since=bad):
                page = self.open_stream(f"?since={bad}")
                frame = page.frame()
                self.assertEqual(frame["error"], "invalid-since")

                post = services.post_create(liveblog=self.liveblog, body="new")
                self.assertEqual(page.frame()["post"]["id"], post.id)
                page.disconnect()

    def test_an_unknown_liveblog_gets_an_error_frame_that_closes_with_4404(self):
        page = StreamClient("/liveblog/no-such-blog/stream/")
        page.connect()

        content = page.next_content()
        self.assertEqual(content["close"], 4404)
        self.assertIn('"error":"liveblog-not-found"', content["text"])
        self.assertIsNone(page.next_content())

    def test_frames_from_the_page_are_refused_as_read_only(self):
        page = self.open_stream()

        page.send_json({"command": "anything"})

        self.assertEqual(page.frame()["error"], "read-only")
        post = services.post_create(liveblog=self.liveblog, body="still here")
        self.assertEqual(page.frame()["post"]["id"], post.id)

    def test_a_closed_stream_gets_nothing_more(self):
        page = self.open_stream()
        watching = self.open_stream()

        page.disconnect()
        services.post_create(liveblog=self.liveblog, body="after close")

        self.assertIsNone(page.next_content())
        self.assertEqual(watching.frame()["type"], "post.created")


@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class DisconnectLookupTests(TransactionChannelTestCase):
    """A drain's thousands of disconnects for one liveblog look its group up once."""

    def setUp(self):
        self.liveblog = services.liveblog_create(title="Launch", slug="launch")

    def test_disconnects_of_one_liveblog_ask_the_database_once(self):
        pages = [StreamClient("/liveblog/launch/stream/") for _ in range(3)]
        for page in pages:
            page.connect()
        with mock.patch.object(
            consumers.selectors, "liveblog_group_name", wraps=consumers.selectors.liveblog_group_name
        ) as lookup:
            for page in pages:
                page.disconnect()
        self.assertEqual(lookup.call_count, 1)
        services.post_create(liveblog=self.liveblog, body="after close")
        for page in pages:
            self.assertIsNone(page.next_content())

    def test_a_liveblog_saved_or_deleted_is_looked_up_afresh(self):
        page = StreamClient("/liveblog/launch/stream/")
        page.connect()
        page.disconnect()
        # Another liveblog after it, so that the new one cannot get the deleted one's primary key.
        services.liveblog_create(title="Other", slug="other")
        old_group = self.liveblog.group_name
        self.liveblog.delete()
        again = services.liveblog_create(title="Launch again", slug="launch")
        self.assertNotEqual(again.group_name, old_group)
        watching = StreamClient("/liveblog/launch/stream/")
        watching.connect()
        gone = StreamClient("/liveblog/launch/stream/")
        gone.connect()

        gone.disconnect()
        post = services.post_create(liveblog=again, body="new")

        self.assertIsNone(gone.next_content())
        self.assertEqual(watching.frame()["post"]["id"], post.id)
