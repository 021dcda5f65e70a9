"""daphne's entry point: `daphne tests.kit.channels1.asgi:channel_layer`."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.kit.channels1.settings")

from channels.asgi import get_channel_layer  # noqa: E402  (reads the settings module named above)

channel_layer = get_channel_layer()
