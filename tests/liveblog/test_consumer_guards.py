"""liveblog.consumers' guards: the handshake's Origin, and `since` values the database cannot compare."""

from channels.exceptions import DenyConnection
from channels.test import TransactionChannelTestCase
from django.test import override_settings

from liveblog import services
from liveblog.models import Post
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient


@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class LiveblogGuardTests(TransactionChannelTestCase):
    def setUp(self):
        self.liveblog = services.liveblog_create(title="Launch", slug="launch")

    def test_a_page_of_another_site_cannot_open_the_stream(self):
        for origin in ("https://evil.example", None):
            with self.subTest(origin=origin), self.assertRaises(DenyConnection):
                StreamClient("/liveblog/launch/stream/", origin=origin).connect(check_accept=False)

    def test_since_that_is_not_a_plain_id_is_invalid_and_the_stream_still_goes_live(self):
        services.post_create(liveblog=self.liveblog, body="before")
        for since in ("99999999999999999999", "9223372036854775808", "+5", "1e3", "%EF%BC%91", " 5", "-0"):
            with self.subTest(since=since):
                page = StreamClient(f"/liveblog/launch/stream/?since={since}")
                page.connect()
                self.assertEqual(page.frame()["error"], "invalid-since")
        page = StreamClient("/liveblog/launch/stream/?since=9223372036854775807")
        page.connect()
        # The largest valid cursor: nothing to replay, and the page is set back to the real one.
        self.assertEqual(page.frames(), [{"type": "liveblog.synced", "seq": 1}])

    def test_nothing_sent_over_the_stream_makes_a_post(self):
        page = StreamClient("/liveblog/launch/stream/")
        page.connect()
        page.send_json({"command": "post", "body": "sneaked in"})
        page.send_bytes(b"\x00")
        self.assertEqual([f["error"] for f in page.frames()], ["read-only", "read-only"])
        self.assertFalse(Post.objects.exists())
