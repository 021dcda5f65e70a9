"""Entry point of the interface servers: `daphne project.asgi:channel_layer`.

The kit's daphne target (channels1_kit/asgi.py: the configured layer, hardened against Redis
outages and restarts), with production settings unless DJANGO_SETTINGS_MODULE says otherwise:
a deploy that forgets to name them refuses to start without its secrets instead of serving
with DEBUG on and a public key (`make run` and the tests name theirs; manage.py keeps
development as its default).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.prod")

from channels1_kit.asgi import channel_layer  # noqa: E402,F401  (needs the settings module named)
