"""liveblog.selectors that take a shortcut past the ORM agree with it."""

from django.test import TestCase

from liveblog import selectors, services


class LiveblogHeadTests(TestCase):
    def test_the_head_is_the_liveblogs_key_and_latest_change(self):
        liveblog = services.liveblog_create(title="Launch", slug="launch")
        services.liveblog_create(title="Other", slug="other")
        post = services.post_create(liveblog=liveblog, body="first")
        services.post_update(post=post, body="first, edited")
        liveblog.refresh_from_db()

        head = selectors.liveblog_head(slug="launch")

        self.assertEqual((head.pk, head.seq, head.group_name), (liveblog.pk, liveblog.seq, liveblog.group_name))
        self.assertEqual(liveblog.seq, 2)
        self.assertEqual(
            selectors.changes_since(liveblog=head, since=0), selectors.changes_since(liveblog=liveblog, since=0)
        )

    def test_no_liveblog_of_that_slug_has_no_head(self):
        self.assertIsNone(selectors.liveblog_head(slug="no-such-blog"))
