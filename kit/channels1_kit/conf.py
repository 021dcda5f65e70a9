"""The kit's settings: each one a CHANNELS1_KIT_* name in the site's settings, with a default.

A site that names none of them gets the defaults below; docs/adopting.md has the table. Read
them with setting("HEARTBEAT_SECONDS"), at the moment they are needed, so that a test's
override_settings applies.
"""

from typing import Any, Dict

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "CHANNELS1_KIT_"

DEFAULTS: Dict[str, Any] = {
    # The CHANNEL_LAYERS alias the kit hardens, sweeps and reports on.
    "LAYER": "default",
    # daphne: every this many seconds, list the open sockets in Redis and check whether a
    # Redis restarted empty. A daphne silent for three times as long is taken for dead.
    "HEARTBEAT_SECONDS": 10,
    # runworker: remove gone sockets' group memberships and rows this often; 0 turns it off.
    "SWEEP_SECONDS": 30,
    # How far apart the clocks of the daphne and worker hosts may be.
    "CLOCK_SKEW_SECONDS": 10,
    # daphne: a WebSocket frame larger than this never enters Redis ("frame-too-large").
    "MAX_FRAME_BYTES": 65536,
    # runworker: a socket whose frames wait this long for one that was lost is closed with
    # 4503 so that it reconnects. Less than the layer's message expiry.
    "ORDER_STALL_SECONDS": 30,
    # daphne: the path it answers itself, 503 with the reason, while Redis cannot be used.
    "HEALTHZ_PATH": "/healthz",
    # The channel `manage.py worker_health` asks on; the kit routes it in every worker.
    "HEALTH_CHANNEL": "worker.health",
    # Bearer token for the ops endpoint; unset, only staff logins may read it.
    "MONITORING_TOKEN": "",
    # daphne: each socket may send this many frames at once into Redis, then FRAME_RATE a
    # second; frames over budget never reach a worker (channels1_kit/floods.py).
    "FRAME_BURST": 30,
    # Frames a second a socket's budget refills by; 0 turns the budget off.
    "FRAME_RATE": 10,
    # daphne: a socket refused this many frames within 10 s is closed with 4429.
    "FLOOD_CLOSE_AFTER": 100,
    # runworker: on SIGTERM, finish the message in hand before exiting.
    "GRACEFUL_STOP": True,
    # runworker: wait for Redis through an outage instead of exiting.
    "WAIT_FOR_REDIS": True,
}

_NON_NEGATIVE = ("SWEEP_SECONDS", "CLOCK_SKEW_SECONDS", "FRAME_RATE")
_POSITIVE = ("HEARTBEAT_SECONDS", "MAX_FRAME_BYTES", "ORDER_STALL_SECONDS", "FRAME_BURST", "FLOOD_CLOSE_AFTER")


def setting(name: str) -> Any:
    """The site's CHANNELS1_KIT_<name>, or the kit's default."""
    return getattr(settings, PREFIX + name, DEFAULTS[name])


def check() -> None:
    """Refuses a setting the kit cannot use, naming it, rather than failing later in a process."""
    for name in _NON_NEGATIVE + _POSITIVE:
        value = setting(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ImproperlyConfigured(f"{PREFIX}{name} must be a number of seconds or bytes, not {value!r}")
        if value < 0 or (name in _POSITIVE and value == 0):
            least = "more than 0" if name in _POSITIVE else "0 or more"
            raise ImproperlyConfigured(f"{PREFIX}{name} must be {least}, not {value!r}")
    for name in ("HEALTHZ_PATH", "HEALTH_CHANNEL", "LAYER"):
        if not isinstance(setting(name), str) or not setting(name):
            raise ImproperlyConfigured(f"{PREFIX}{name} must be a non-empty string")
    if not setting("HEALTHZ_PATH").startswith("/"):
        raise ImproperlyConfigured(f"{PREFIX}HEALTHZ_PATH must start with /, not {setting('HEALTHZ_PATH')!r}")
    unknown = sorted(name for name in dir(settings) if name.startswith(PREFIX) and name[len(PREFIX) :] not in DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(f"Unknown kit setting(s): {', '.join(unknown)} (see docs/adopting.md)")


def layer_wrapper():
    """channels' wrapper (layer, alias, router) of the alias the kit serves."""
    from channels import channel_layers

    return channel_layers[setting("LAYER")]


def channel_layer():
    """The raw channel layer of the alias the kit serves (CHANNELS1_KIT_LAYER)."""
    return layer_wrapper().channel_layer
