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
    # A socket's channel session (channels1_kit/channel_sessions.py) expires this long after
    # its last write; its daphne renews it while the socket is open, its disconnect deletes it.
    # At least three heartbeats.
    "CHANNEL_SESSION_SECONDS": 300,
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
    # daphne, per client (channels1_kit/client_budgets.py): a client is a browser session
    # (its session cookie) and, always, its address. Handshakes at once, across every daphne,
    # then HANDSHAKE_RATE a second (0: no handshake budget).
    "HANDSHAKE_BURST": 20,
    "HANDSHAKE_RATE": 1,
    # A client refused this many handshakes within 10 s is sent away for CLIENT_AWAY_SECONDS.
    "HANDSHAKE_AWAY_AFTER": 20,
    # Sockets one client may hold open on one daphne (0: no limit).
    "CLIENT_SOCKETS": 20,
    # Frames at once, then a second, for all of one client's sockets on one daphne together
    # (0: no client frame budget). A client refused FLOOD_CLOSE_AFTER of them within 10 s is
    # sent away: its sockets closed with 4430, its handshakes refused for CLIENT_AWAY_SECONDS.
    "CLIENT_FRAME_BURST": 100,
    "CLIENT_FRAME_RATE": 20,
    # Seconds a client that kept going past its budget is told to stay away.
    "CLIENT_AWAY_SECONDS": 60,
    # An address stands for this many clients (people behind one NAT or proxy): its budgets
    # are this many times a session's.
    "ADDRESS_CLIENTS": 10,
    # Presence (channels1_kit/presence.py): a person whose last socket in a group went stays
    # counted this long, so that a page reconnecting within it is no "left" and "joined".
    # 0: they leave at once.
    "PRESENCE_GRACE_SECONDS": 15,
    # daphne: on SIGTERM, close the open sockets in slices over this many seconds, each told
    # when to come back (channels1_kit/drain.py); inside the 30 s before SIGKILL.
    "DRAIN_SECONDS": 20,
    # daphne: handshakes it lets wait for a worker at once; past that, a new one is told when to
    # come back (4013) instead of queuing behind them past daphne's 5 s connect timeout. 0: no limit.
    "CONNECT_PENDING_LIMIT": 200,
    # daphne: accept a registered stream's page already at the stream's head itself, with no
    # worker (channels1_kit/streams.py). False: every handshake goes to the workers.
    "DIRECT_STREAMS": True,
    # runworker: on SIGTERM, finish the message in hand before exiting.
    "GRACEFUL_STOP": True,
    # runworker: wait for Redis through an outage instead of exiting.
    "WAIT_FOR_REDIS": True,
}

_NON_NEGATIVE = (
    "SWEEP_SECONDS",
    "DRAIN_SECONDS",
    "CONNECT_PENDING_LIMIT",
    "PRESENCE_GRACE_SECONDS",
    "CLOCK_SKEW_SECONDS",
    "FRAME_RATE",
    "HANDSHAKE_RATE",
    "CLIENT_SOCKETS",
    "CLIENT_FRAME_RATE",
)
_POSITIVE = (
    "HEARTBEAT_SECONDS",
    "MAX_FRAME_BYTES",
    "ORDER_STALL_SECONDS",
    "FRAME_BURST",
    "FLOOD_CLOSE_AFTER",
    "HANDSHAKE_BURST",
    "HANDSHAKE_AWAY_AFTER",
    "CLIENT_FRAME_BURST",
    "CLIENT_AWAY_SECONDS",
    "ADDRESS_CLIENTS",
)


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
    session_seconds = setting("CHANNEL_SESSION_SECONDS")
    # daphne renews its sockets' sessions on a heartbeat: a shorter expiry would end them between two.
    if isinstance(session_seconds, bool) or not isinstance(session_seconds, int | float):
        raise ImproperlyConfigured(
            f"{PREFIX}CHANNEL_SESSION_SECONDS must be a number of seconds, not {session_seconds!r}"
        )
    if session_seconds < 3 * setting("HEARTBEAT_SECONDS"):
        raise ImproperlyConfigured(
            f"{PREFIX}CHANNEL_SESSION_SECONDS must be at least three heartbeats "
            f"({3 * setting('HEARTBEAT_SECONDS')} s), not {session_seconds!r}"
        )
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
