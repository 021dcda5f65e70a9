"""A Redis channel layer for Channels 1 that fans group messages out without losing them.

Point ``CHANNEL_LAYERS["default"]["BACKEND"]`` at ``"fanout_layer.FanoutRedisChannelLayer"``;
it takes asgi_redis's CONFIG keys, plus ``process_local_capacity`` and ``receive_batch_size``.
"""

from .layer import FanoutRedisChannelLayer

__all__ = ["FanoutRedisChannelLayer"]
