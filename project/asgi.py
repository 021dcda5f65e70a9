"""Entry point of the interface servers: `daphne project.asgi:channel_layer`.

daphne only needs the channel layer; the consumers run in `manage.py runworker`.
"""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.dev")

channel_layer = get_channel_layer()
