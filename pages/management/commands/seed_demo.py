"""Creates the demo liveblog, the demo rooms and a demo login, once; safe to run again."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chat import services as chat_services
from chat.models import Room
from liveblog import services as liveblog_services
from liveblog.models import Liveblog


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        username = os.environ.get("DEMO_USERNAME", "demo")
        password = os.environ.get("DEMO_PASSWORD", "demo")
        if not Liveblog.objects.filter(slug="demo").exists():
            liveblog_services.liveblog_create(title="Demo liveblog", slug="demo")
        for title, slug, staff_only in [("General", "general", False), ("Staff room", "staff", True)]:
            if not Room.objects.filter(slug=slug).exists():
                chat_services.room_create(title=title, slug=slug, staff_only=staff_only)
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        user.set_password(password)
        user.save()
        self.stdout.write(f"demo login: {username} / {password} (staff; publishes in /admin/)")
