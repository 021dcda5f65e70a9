"""daphne's target for any Channels 1 site: `daphne channels1_kit.asgi:channel_layer`.

It reads DJANGO_SETTINGS_MODULE, as manage.py does, and gives daphne the site's channel layer
(CHANNELS1_KIT_LAYER, "default") wrapped in InterfaceLayer (channels1_kit/interface.py): 503
and close 1013 instead of errors while Redis cannot be used, every socket closed with 4503 when
Redis restarts empty, oversized frames kept out of Redis, budgets per socket and per client,
snapshots of the open sockets for the sweep. A site that wants a default settings module sets
it in an asgi module of its own and imports channel_layer from here.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    raise ImproperlyConfigured(
        "channels1_kit.asgi needs DJANGO_SETTINGS_MODULE naming the site's settings (as manage.py does)"
    )

from channels.asgi import get_channel_layer  # noqa: E402  (after the check: it loads the settings)

from channels1_kit.conf import setting  # noqa: E402
from channels1_kit.interface import InterfaceLayer  # noqa: E402

# With --proxy-headers daphne takes the client's address from X-Forwarded-For, and so must the
# client budgets (channels1_kit/client_budgets.py); daphne keeps its options to itself, and its
# command line, which imports this module, is where they are.
channel_layer = InterfaceLayer(get_channel_layer(setting("LAYER")), proxy_headers="--proxy-headers" in sys.argv[1:])
