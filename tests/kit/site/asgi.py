"""daphne's entry point: `daphne tests.kit.site.asgi:channel_layer`. The consumers run in runworker."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.kit.settings")

from channels.asgi import get_channel_layer  # noqa: E402  (reads the settings module named above)

channel_layer = get_channel_layer()
