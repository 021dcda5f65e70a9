"""Entry point of the interface servers: `daphne project.asgi:channel_layer`.

daphne only needs the channel layer; the consumers run in `manage.py runworker`. It gets
the configured layer wrapped in InterfaceLayer (project/interface.py), which rides out a
Redis outage: 503 and close 1013 instead of errors, sockets closed so that they reconnect
when Redis comes back empty, snapshots of the open sockets for the sweep.

Production settings unless DJANGO_SETTINGS_MODULE says otherwise: a deploy that forgets to name
them refuses to start without its secrets instead of serving with DEBUG on and a public key
(`make run` and the tests name theirs; manage.py keeps development as its default).
"""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.prod")

from project.interface import InterfaceLayer  # noqa: E402  (needs the settings module named)

channel_layer = InterfaceLayer(get_channel_layer())
