"""liveblog.services: each write reaches the open streams, and only once it has committed."""

import json

from channels import Group
from channels.test import TransactionChannelTestCase
from django.db import transaction
from django.test import override_settings

from liveblog import services
from liveblog.models import Post
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient


class Rollback(Exception):
    pass


# Transaction test case: broadcasts wait for a real commit, which TestCase never makes.
@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class PostServicesTests(TransactionChannelTestCase):
    def setUp(self):
        self.liveblog = services.liveblog_create(title="Launch", slug="launch")
        self.page = StreamClient("/liveblog/launch/stream/")
        Group(self.liveblog.group_name).add(self.page.reply_channel)

    def test_post_create_saves_the_post_and_broadcasts_it(self):
        post = services.post_create(liveblog=self.liveblog, body="  Doors open  ")

        self.assertEqual(Post.objects.get(pk=post.pk).body, "Doors open")
        frame = self.page.frame()
        self.assertEqual(frame["type"], "post.created")
        self.assertEqual(frame["post"]["id"], post.id)
        self.assertEqual(frame["post"]["body"], "Doors open")
        self.assertEqual(frame["post"]["created"], post.created.isoformat())

    def test_post_create_broadcasts_nothing_until_the_transaction_commits(self):
        with transaction.atomic():
            post = services.post_create(liveblog=self.liveblog, body="Pending")
            self.assertIsNone(self.page.next_content())
        self.assertEqual(self.page.frame()["post"]["id"], post.id)

    def test_a_rolled_back_post_create_broadcasts_nothing(self):
        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.post_create(liveblog=self.liveblog, body="Never happened")
                raise Rollback()

        self.assertFalse(Post.objects.exists())
        self.assertIsNone(self.page.next_content())

    def test_a_post_without_a_body_is_refused_and_not_broadcast(self):
        with self.assertRaises(ValueError):
            services.post_create(liveblog=self.liveblog, body="   ")

        self.assertFalse(Post.objects.exists())
        self.assertIsNone(self.page.next_content())

    def test_post_update_saves_and_broadcasts_the_new_body(self):
        post = services.post_create(liveblog=self.liveblog, body="Frist")
        self.page.frames()

        services.post_update(post=post, body="First")

        self.assertEqual(Post.objects.get(pk=post.pk).body, "First")
        frame = self.page.frame()
        self.assertEqual(frame["type"], "post.updated")
        self.assertEqual(frame["post"]["id"], post.id)
        self.assertEqual(frame["post"]["body"], "First")

    def test_a_rolled_back_post_update_broadcasts_nothing(self):
        post = services.post_create(liveblog=self.liveblog, body="Original")
        self.page.frames()

        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.post_update(post=post, body="Edited")
                raise Rollback()

        self.assertEqual(Post.objects.get(pk=post.pk).body, "Original")
        self.assertIsNone(self.page.next_content())

    def test_post_delete_removes_the_post_and_broadcasts_its_id(self):
        post = services.post_create(liveblog=self.liveblog, body="Oops")
        post_id = post.id
        self.page.frames()

        services.post_delete(post=post)

        self.assertFalse(Post.objects.filter(pk=post_id).exists())
        self.assertEqual(self.page.frame(), {"type": "post.deleted", "seq": 2, "post": {"id": post_id}})
        # A tombstone, for pages away at the time.
        self.assertEqual(list(self.liveblog.deletions.values_list("post_id", "seq")), [(post_id, 2)])

    def test_every_change_takes_the_liveblogs_next_number(self):
        post = services.post_create(liveblog=self.liveblog, body="one")
        services.post_update(post=post, body="one, edited")
        other = services.post_create(liveblog=self.liveblog, body="two")
        services.post_delete(post=other)

        self.assertEqual([frame["seq"] for frame in self.page.frames()], [1, 2, 3, 4])
        self.liveblog.refresh_from_db()
        self.assertEqual(self.liveblog.seq, 4)
        self.assertEqual(Post.objects.values_list("created_seq", "seq").get(pk=post.pk), (1, 2))

    def test_a_rolled_back_change_gives_back_its_number(self):
        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.post_create(liveblog=self.liveblog, body="Never happened")
                raise Rollback()
        post = services.post_create(liveblog=self.liveblog, body="Happened")
        self.assertEqual(post.seq, 1)

    def test_the_group_goes_by_primary_key_so_a_new_slug_keeps_it(self):
        group = self.liveblog.group_name
        services.liveblog_update(liveblog=self.liveblog, title="Renamed", slug="renamed")
        self.assertEqual(self.liveblog.group_name, group)
        self.assertEqual(group, f"liveblog.id.{self.liveblog.pk}")
        self.assertEqual(self.liveblog.legacy_group_name, "liveblog.renamed")

    def test_a_post_reaches_only_the_pages_of_its_own_liveblog(self):
        other = services.liveblog_create(title="Other", slug="other")

        services.post_create(liveblog=other, body="Elsewhere")

        self.assertIsNone(self.page.next_content())

    def test_the_broadcast_is_one_json_text_frame(self):
        services.post_create(liveblog=self.liveblog, body="Ünïcode ✓")

        content = self.page.next_content()
        self.assertEqual(set(content), {"text"})
        self.assertEqual(json.loads(content["text"])["post"]["body"], "Ünïcode ✓")
