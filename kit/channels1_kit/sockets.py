"""Which WebSockets are gone, and the sweep that forgets them.

A socket's presence rows and group memberships are removed by its websocket.disconnect.
Some disconnects never come: a daphne killed with SIGKILL sends none, a daphne cannot send
one while Redis is down, and a disconnect parked behind a lost frame by enforce_ordering
never runs. Without a sweep those sockets would be counted in their rooms and sent every
group message until the group expiry (a week).

Every daphne lists its open sockets in Redis every CHANNELS1_KIT_HEARTBEAT_SECONDS
(channels1_kit/interface.py writes the snapshot with write_snapshot()). A socket is gone when:

* its daphne's latest snapshot, taken after the socket joined (with CHANNELS1_KIT_CLOCK_SKEW_SECONDS
  to spare), does not list it; or
* its daphne has written no snapshot for three heartbeats (the snapshot's expiry) while
  Redis has been up that long: the daphne is dead.

Each runworker sweeps every CHANNELS1_KIT_SWEEP_SECONDS in a thread (start_sweeper), and
`manage.py sweep_sockets` sweeps once. Only channels of daphne processes are judged;
anything else (a test client's channel) is never taken for gone.

What the layer keeps per socket goes too (forget_sockets): its channel session, and the
statistics of its enforce_ordering wait channel (an hour's worth of keys per socket
otherwise). A disconnect removes them (channels1_kit/gone.py); the sweep removes those of a
dead daphne's sockets, none of whose disconnects can still be on their way; the sessions of
any other socket whose disconnect was lost expire on their own, since no daphne renews them
(write_snapshot renews the open sockets' ones).

The kit knows no app: each app registers, from its AppConfig.ready(), the groups it puts
sockets in and, if it keeps rows per socket (presence, say), how to list and forget them:

    sockets.register("chat", groups=selectors.socket_group_names,
                     sockets=selectors.presence_sockets, forget=services.presence_sweep)

An app that renames its groups (from slugs to primary keys, say) also registers the names it
used before (`legacy_groups=`). Sockets still in one of those after a deploy would hear nothing
more, since the new code sends to the new names: each sweep, and `manage.py close_legacy_groups`
at once, closes them with 4503 (reconnect and catch up) and empties those groups.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

from channels1_kit import channel_sessions, periodic
from channels1_kit.conf import channel_layer, setting
from channels1_kit.websocket import CLOSE_RECONNECT

logger = logging.getLogger(__name__)

DAPHNE_PREFIX = "daphne.response."


def daphne_of(channel: str) -> Optional[str]:
    """The process-local part of a daphne reply channel ("daphne.response.AbCd!"), or None."""
    name, bang, _ = channel.partition("!")
    if not bang or not name.startswith(DAPHNE_PREFIX):
        return None
    return name + "!"


def snapshot_key(layer, daphne: str) -> str:
    return f"{layer.prefix}:sockets:{daphne}"


def dead_after() -> int:
    """Seconds without a snapshot after which a daphne is taken for dead."""
    return 3 * setting("HEARTBEAT_SECONDS")


def write_snapshot(layer, daphne: str, sockets: Iterable[str], *, now: float) -> None:
    """Records that the daphne `daphne` has exactly these sockets open (full channel names) now,
    and keeps their channel sessions from expiring while they are."""
    own = [channel for channel in sockets if channel.startswith(daphne)]
    local_parts = sorted(channel[len(daphne) :] for channel in own)
    layer.connection(0).set(
        snapshot_key(layer, daphne), json.dumps({"at": now, "sockets": local_parts}), ex=max(dead_after(), 1)
    )
    channel_sessions.refresh(layer, daphne, own, now=now)


def daphne_dead(layer, daphne: str) -> bool:
    """Whether the daphne process `daphne` is dead: no snapshot of it, while Redis has been up
    for longer than a daphne may go without writing one (else Redis may just have lost it)."""
    redis = layer.connection(0)
    if redis.exists(snapshot_key(layer, daphne)):
        return False
    return float(redis.info("server")["uptime_in_seconds"]) >= dead_after()


def forget_sockets(layer, reply_channels: Iterable[str]) -> int:
    """Deletes what the layer keeps for each of these sockets, gone: its channel session and
    its enforce_ordering wait channel's statistics. Returns how many sockets."""
    from channels.sessions import wait_channel_name

    reply_channels = list(reply_channels)
    channel_sessions.forget(reply_channels)
    stats_prefix = getattr(layer, "stats_prefix", None)
    if stats_prefix is not None and reply_channels:
        stats = [
            getattr(layer, "STAT_MESSAGES_COUNT", "messages_count"),
            getattr(layer, "STAT_CHANNEL_FULL", "channel_full_count"),
        ]
        by_shard: Dict[int, List[str]] = {}
        for reply_channel in reply_channels:
            # asgi_redis and fanout_layer count a wait channel ("?": one reader) on the shard it hashes to.
            wait = wait_channel_name(reply_channel)
            by_shard.setdefault(layer.consistent_hash(wait), []).extend(
                f"{stats_prefix}{wait}:{stat}" for stat in stats
            )
        for index, keys in by_shard.items():
            layer.connection(index).delete(*keys)
    return len(reply_channels)


@dataclass(frozen=True)
class Snapshot:
    at: float
    local_parts: FrozenSet[str]


@dataclass
class Liveness:
    """What the sweep knows: each daphne's latest snapshot, and how long Redis has been up."""

    snapshots: Dict[str, Snapshot]
    redis_uptime: float
    now: float
    dead_after: float
    clock_skew: float
    gone_daphnes: set = field(default_factory=set)

    def gone(self, channel: str, since: float) -> bool:
        """Whether the socket `channel`, known to the caller since `since` (a timestamp), is gone."""
        daphne = daphne_of(channel)
        if daphne is None:
            return False
        snapshot = self.snapshots.get(daphne)
        if snapshot is not None:
            return channel[len(daphne) :] not in snapshot.local_parts and since < snapshot.at - self.clock_skew
        # No snapshot: either the daphne is dead or Redis lost it (restarted empty) less than
        # dead_after ago, in which case the daphne writes a new one soon.
        if self.redis_uptime >= self.dead_after and since < self.now - self.dead_after:
            self.gone_daphnes.add(daphne)
            return True
        return False


def read_liveness(layer, daphnes: Iterable[str], *, now: Optional[float] = None) -> Liveness:
    daphnes = sorted(set(daphnes))
    redis = layer.connection(0)
    snapshots = {}
    if daphnes:
        for daphne, raw in zip(daphnes, redis.mget([snapshot_key(layer, daphne) for daphne in daphnes]), strict=True):
            if raw:
                data = json.loads(raw)
                snapshots[daphne] = Snapshot(at=float(data["at"]), local_parts=frozenset(data["sockets"]))
    return Liveness(
        snapshots=snapshots,
        redis_uptime=float(redis.info("server")["uptime_in_seconds"]),
        now=time.time() if now is None else now,
        dead_after=dead_after(),
        clock_skew=setting("CLOCK_SKEW_SECONDS"),
    )


def group_members(layer, group: str) -> List[Tuple[str, float]]:
    """A group's members and when each was added, as asgi_redis and fanout_layer keep them
    (a sorted set scored by the time of group_add)."""
    redis = layer.connection(layer.consistent_hash(group))
    cutoff = time.time() - layer.group_expiry
    return [
        (member.decode("utf8"), score)
        for member, score in redis.zrange(layer._group_key(group), 0, -1, withscores=True)
        if score > cutoff
    ]


# gone(channel, since): whether a socket known since `since` (a timestamp) is gone.
Gone = Callable[[str, float], bool]


@dataclass(frozen=True)
class SweptApp:
    """What the sweep cleans for one app: memberships of its groups, and its rows per socket."""

    label: str
    # Every group the app puts sockets in (read at each sweep: groups come and go with rows).
    groups: Callable[[], Iterable[str]]
    # The sockets the app keeps rows for, with when each was first recorded (a timestamp).
    sockets: Callable[[], Iterable[Tuple[str, float]]] = tuple
    # forget(gone=...) removes the rows of gone sockets (telling whoever must hear of it);
    # returns how many it removed.
    forget: Optional[Callable[..., int]] = None
    # Group names the app used before; their sockets are closed with 4503 (close_legacy_groups).
    legacy_groups: Callable[[], Iterable[str]] = tuple


_registry: Dict[str, SweptApp] = {}


def register(
    label: str,
    *,
    groups: Callable[[], Iterable[str]],
    sockets: Callable[[], Iterable[Tuple[str, float]]] = tuple,
    forget: Optional[Callable[..., int]] = None,
    legacy_groups: Callable[[], Iterable[str]] = tuple,
) -> None:
    """Adds (or replaces) what the sweep cleans for the app `label`; call from AppConfig.ready()."""
    _registry[label] = SweptApp(label=label, groups=groups, sockets=sockets, forget=forget, legacy_groups=legacy_groups)


def unregister(label: str) -> None:
    _registry.pop(label, None)


def registered() -> List[SweptApp]:
    return [_registry[label] for label in sorted(_registry)]


def swept_groups() -> List[str]:
    """Every group the registered apps put sockets in."""
    return [group for app in registered() for group in app.groups()]


def close_legacy_groups(layer=None) -> int:
    """Closes with 4503 every socket in a group name a registered app no longer uses, and
    empties those groups; returns how many memberships it closed.

    The client reconnects and joins the new group. A name that is some app's current group is
    left alone, whatever an app's lists say."""
    if layer is None:
        layer = channel_layer()
    current = set(swept_groups())
    closed = 0
    for app in registered():
        for group in app.legacy_groups():
            if group in current:
                continue
            for channel, _ in group_members(layer, group):
                try:
                    layer.send(channel, {"close": CLOSE_RECONNECT})
                except layer.ChannelFull:
                    # The socket is already far behind; its daphne closes it or the sweep finds it gone.
                    logger.warning("could not close %s (its channel is full)", channel)
                layer.group_discard(group, channel)
                closed += 1
    if closed:
        logger.info("Closed %d socket membership(s) of group names no longer used", closed)
    return closed


@dataclass
class SweepReport:
    rows: int = 0
    memberships: int = 0
    dead_daphnes: List[str] = field(default_factory=list)
    legacy_closed: int = 0
    # Sockets of dead daphnes whose channel session and wait statistics were deleted.
    sessions: int = 0

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "memberships": self.memberships,
            "dead_daphnes": self.dead_daphnes,
            "legacy_closed": self.legacy_closed,
            "sessions": self.sessions,
        }


def sweep(layer=None, *, now: Optional[float] = None) -> SweepReport:
    """Removes the registered apps' rows and group memberships of gone sockets; says how many."""
    if layer is None:
        layer = channel_layer()
    apps = registered()
    rows = [channel for app in apps for channel, _ in app.sockets()]
    members = {group: group_members(layer, group) for group in swept_groups()}
    channels = rows + [channel for pairs in members.values() for channel, _ in pairs]
    liveness = read_liveness(layer, filter(None, map(daphne_of, channels)), now=now)
    found_gone = set()

    def gone(channel: str, since: float) -> bool:
        if liveness.gone(channel, since):
            found_gone.add(channel)
            return True
        return False

    report = SweepReport()
    for app in apps:
        if app.forget is not None:
            report.rows += app.forget(gone=gone)
    for group, pairs in members.items():
        for channel, since in pairs:
            if gone(channel, since):
                layer.group_discard(group, channel)
                report.memberships += 1
    report.dead_daphnes = sorted(liveness.gone_daphnes)
    # Only a dead daphne's: a socket that a live daphne no longer lists may have its disconnect
    # in a worker's hands right now, which would fail to save a session deleted under it. The
    # other ones' sessions expire by themselves.
    report.sessions = forget_sockets(
        layer, sorted(channel for channel in found_gone if daphne_of(channel) in liveness.gone_daphnes)
    )
    report.legacy_closed = close_legacy_groups(layer)
    if report.rows or report.memberships:
        logger.info(
            "Swept gone sockets: %d row(s), %d group membership(s), %d channel session(s); dead daphnes: %s",
            report.rows,
            report.memberships,
            report.sessions,
            ", ".join(report.dead_daphnes) or "none",
        )
    return report


def start_sweeper(sender, **kwargs) -> None:
    """worker_process_ready receiver: sweeps gone sockets every CHANNELS1_KIT_SWEEP_SECONDS, in a thread."""
    interval = setting("SWEEP_SECONDS")
    if interval <= 0:
        return
    periodic.start("socket sweep", sweep, interval=interval, spread=True)
    logger.info("Sweeping gone sockets every %ss", interval)
