"""liveblog.admin writes through the services: open pages hear of every change the admin makes."""

from channels import Group
from channels.test import TransactionChannelTestCase
from django.contrib.auth.models import User
from django.test import Client, override_settings

from liveblog import frames, services
from liveblog.models import Liveblog, Post
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient


@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class LiveblogAdminTests(TransactionChannelTestCase):
    def setUp(self):
        self.liveblog = services.liveblog_create(title="Launch", slug="launch")
        self.page = StreamClient("/liveblog/launch/stream/")
        Group(self.liveblog.group_name).add(self.page.reply_channel)
        User.objects.create_superuser("admin", "admin@example.com", "admin")
        self.admin = Client()
        self.admin.login(username="admin", password="admin")

    def test_deleting_a_liveblog_in_the_admin_closes_its_streams_with_4404(self):
        response = self.admin.post(f"/admin/liveblog/liveblog/{self.liveblog.pk}/delete/", {"post": "yes"})

        self.assertEqual(response.status_code, 302)
        self.assertFalse(Liveblog.objects.exists())
        content = self.page.next_content()
        self.assertEqual(content["close"], 4404)
        self.assertIn('"error":"liveblog-deleted"', content["text"])

    def test_deleting_liveblogs_from_the_list_closes_the_streams_of_each(self):
        other = services.liveblog_create(title="Other", slug="other")
        other_page = StreamClient("/liveblog/other/stream/")
        Group(other.group_name).add(other_page.reply_channel)

        response = self.admin.post(
            "/admin/liveblog/liveblog/",
            {"action": "delete_selected", "_selected_action": [self.liveblog.pk, other.pk], "post": "yes"},
        )

        self.assertEqual(response.status_code, 302)
        self.assertFalse(Liveblog.objects.exists())
        self.assertEqual(self.page.next_content()["close"], 4404)
        self.assertEqual(other_page.next_content()["close"], 4404)

    def test_renaming_a_slug_in_the_admin_tells_the_open_pages_the_new_address(self):
        response = self.admin.post(
            f"/admin/liveblog/liveblog/{self.liveblog.pk}/change/", {"title": "Launch day", "slug": "launch-day"}
        )

        self.assertEqual(response.status_code, 302)
        frame = self.page.frame()
        self.assertEqual(frame["type"], "liveblog.renamed")
        self.assertEqual(frame["stream"], "/liveblog/launch-day/stream/")

    def test_a_post_published_in_the_admin_is_numbered_and_broadcast(self):
        response = self.admin.post("/admin/liveblog/post/add/", {"liveblog": self.liveblog.pk, "body": "Doors open"})

        self.assertEqual(response.status_code, 302)
        post = Post.objects.get()
        self.assertEqual((post.created_seq, post.seq), (1, 1))
        self.assertEqual(self.page.frame(), frames.post_event(frames.POST_CREATED, post))
