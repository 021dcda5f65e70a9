"""The measurements. Each one is bounded in count and in time, and returns plain data (JSON).

Times are time.time() in every process on this machine: the clients (all in this
process), the liveblog driver and the HTTP load processes.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import procstat
from .stats import quantiles_ms, summary_ms
from .targets import LIVEBLOG, REPO
from .wsclient import Socket, Tally, close_many, connect, open_many


@dataclass(frozen=True)
class Config:
    """Sizes and bounds of one run; FULL for make bench, QUICK for development."""

    sizes: tuple[int, ...] = (10, 100, 1000)
    # Messages sent to each fan-out room (one more goes first to warm up, uncounted).
    messages: int = 20
    echo_round_trips: int = 300
    liveblog_streams: int = 1000
    liveblog_posts: int = 20
    # Sockets that open first, then all ask to join one room at the same moment.
    join_burst: int = 1000
    # Sustained fan-out: sockets in one room, and messages a second to it for so many
    # seconds, sent on a clock whether or not the previous ones have arrived (open loop),
    # by members in turn (see SENDS_PER_SOCKET).
    sustained_sockets: int = 1000
    sustained_rate: float = 10.0
    sustained_seconds: float = 30.0
    sustained_senders: int = 20
    # The crowd: this many sockets over the two daphnes, then `crowd_messages` to all of
    # them; no socket is tried after `crowd_open_limit` seconds of opening.
    crowd_sockets: int = 10_000
    crowd_messages: int = 10
    crowd_open_limit: float = 300.0
    # Reconnect floods (echo beside one client that opens socket after socket): the most
    # round trips measured, and for how long at most, while the flood goes on.
    reconnect_round_trips: int = 300
    reconnect_seconds: float = 15.0
    # Rolling restart (bench/restart.py): this many sockets, of them this many chat members
    # spread over `restart_rooms` rooms, the rest liveblog pages; both daphnes restarted in turn.
    restart_sockets: int = 10_000
    restart_chat_members: int = 1_000
    restart_rooms: int = 10
    # Churn: rounds of `churn_clients` users, each opening, joining, sending and dropping
    # sockets for `churn_seconds`; after each round the servers settle and are read.
    churn_rounds: int = 5
    churn_seconds: float = 20.0
    churn_clients: int = 8
    http_seconds: float = 5.0
    http_clients: int = 4
    http_max_requests: int = 20_000
    users: int = 10
    # Handshakes (and joins) in flight at once while opening sockets.
    connect_concurrency: int = 20
    # A message counts as lost for the sockets that do not have it when none has arrived
    # for `quiet` seconds, or `message_limit` seconds after it was sent.
    quiet: float = 1.0
    message_limit: float = 10.0
    # Pause after each fan-out message is everywhere (or given up on), before the next.
    gap: float = 0.05
    # Longest wait for the servers to finish the previous step (disconnects) before the next.
    settle_limit: float = 90.0
    # Longest a fan-out's or the liveblog's messages may take in all: past it, no more are
    # sent (a lossy layer waits out `quiet` on every message); the report gives the count.
    loop_limit: float = 150.0


FULL = Config()
QUICK = Config(
    sizes=(10, 50),
    messages=10,
    echo_round_trips=50,
    liveblog_streams=50,
    liveblog_posts=5,
    join_burst=50,
    sustained_sockets=50,
    sustained_seconds=5.0,
    sustained_senders=10,
    crowd_sockets=300,
    crowd_messages=3,
    crowd_open_limit=60.0,
    reconnect_round_trips=60,
    reconnect_seconds=5.0,
    churn_rounds=3,
    churn_seconds=5.0,
    churn_clients=4,
    restart_sockets=300,
    restart_chat_members=30,
    restart_rooms=3,
    http_seconds=2.0,
    http_max_requests=2_000,
    users=4,
    settle_limit=30.0,
)


def config_dict(config: Config) -> dict:
    return asdict(config)


def _all_pids(target) -> list[int]:
    return [pid for pids in target.pids.values() for pid in pids]


async def settle(target, *, limit: float, window: float = 0.5, busy: float = 0.03) -> float:
    """Until the server processes together use under `busy` CPU-seconds per `window`; bounded by limit.

    The event loop keeps running meanwhile, so open sockets still answer pings.
    """
    pids = _all_pids(target)
    started = time.monotonic()
    previous = sum(procstat.cpu_seconds(pid) for pid in pids)
    while time.monotonic() - started < limit:
        await asyncio.sleep(window)
        current = sum(procstat.cpu_seconds(pid) for pid in pids)
        if current - previous < busy:
            break
        previous = current
    return round(time.monotonic() - started, 2)


def send(socket: Socket, payload: dict) -> bool:
    """Sends a frame; False, sending nothing, if the server has closed the socket meanwhile."""
    if not socket.open:
        return False
    socket.send_json(payload)
    return True


def _sender(senders: list[Socket], number: int, others: Sequence[Socket] = ()) -> Socket | None:
    """The member whose turn it is to send, or the next one still open; if the server closed
    them all (the site closes a socket whose frames it lost, as on the stock layer), another
    open one of `others`."""
    turn = number % len(senders)
    found = next((socket for socket in senders[turn:] + senders[:turn] if socket.open), None)
    return found or next((socket for socket in others if socket.open), None)


def _chat_message(room: str, tag: str, number: int) -> dict:
    return {"command": "send", "room": room, "message": f"bench {tag} {number}"}


async def warm_up(target, config: Config) -> None:
    """A socket on each daphne joins the echo room and sends a few messages; then they close."""
    tally = Tally("warm")
    specs = [(target.chat_url(index), target.cookie(index)) for index in range(target.daphne_count)]
    opened = await open_many(specs, on_text=tally.on_text, concurrency=2, join_room="warm")
    try:
        for number in range(5):
            for socket in opened.sockets:
                sent = time.time()
                send(socket, _chat_message("warm", "warm", number))
                await tally.wait(number, len(opened.sockets), since=sent, quiet=2.0, limit=5.0)
    finally:
        await close_many(opened.sockets, concurrency=4)
    await settle(target, limit=config.settle_limit)


# The site lets one socket send at most 10 chat messages in any 10 seconds; the benchmark
# keeps under that by spreading its sends over several sockets.
SENDS_PER_SOCKET = 8
ECHO_WARM_UP = 20


def echo_sockets(config: Config, round_trips: int | None = None) -> int:
    """How many sockets (each alone in its own room "echo-N") the echo round trips take turns on;
    without `round_trips`, for the longest echo of the run (its rooms are made for that)."""
    if round_trips is None:
        round_trips = max(config.echo_round_trips, config.reconnect_round_trips)
    return -(-(ECHO_WARM_UP + round_trips) // SENDS_PER_SOCKET)


# A flooding client (echo with flooder=flood): frames it writes a second, at most, and in what
# batches; and how long it waits before it opens a new socket once the site closed one (the
# pages' WebSocketBridge waits 1.5-3 s: this is a page gone wrong, not a scripted attacker).
FLOOD_FRAMES_PER_S = 1000
FLOOD_BATCH = 20
FLOOD_RECONNECT_S = 1.5


async def flood(target, stop: asyncio.Event, counts: dict) -> None:
    """A logged-in socket on the first daphne writing frames as fast as FLOOD_FRAMES_PER_S
    allows (half chat sends, half invalid JSON) until `stop`; when the server closes it (the
    site's frame budget does, 4429), it opens another FLOOD_RECONNECT_S later and goes on."""
    counts.update(frames=0, sockets=0, refused_opens=0)
    while not stop.is_set():
        try:
            socket = await connect(target.chat_url(0), cookie=target.cookie(0), timeout=10)
        except Exception:
            counts["refused_opens"] += 1
            await asyncio.sleep(0.2)
            continue
        counts["sockets"] += 1
        try:
            while socket.open and not stop.is_set():
                for number in range(FLOOD_BATCH):
                    if number % 2:
                        socket.ws.send_text(b"{not json")
                        socket._flush()
                    else:
                        socket.send_json(_chat_message("flood", "flood", number))
                counts["frames"] += FLOOD_BATCH
                await asyncio.sleep(FLOOD_BATCH / FLOOD_FRAMES_PER_S)
        finally:
            await socket.close(timeout=1.0)
        try:
            await asyncio.wait_for(stop.wait(), FLOOD_RECONNECT_S)
        except TimeoutError:
            pass


Flooder = Callable[..., Awaitable[None]]


async def echo(
    target,
    config: Config,
    *,
    flooder: Flooder | None = None,
    round_trips: int | None = None,
    seconds: float | None = None,
) -> dict:
    """Round trips of a socket alone in a room: send, until its own message comes back.

    One round trip at a time; the sockets (each in a room of its own, all on the first
    daphne) take turns so that none sends more than SENDS_PER_SOCKET messages. With a
    `flooder` (flood(), reconnect_flood()), another client floods all along, and the round
    trips stop after `seconds` if they have not all been made by then (a slowed echo must not
    hold the run).
    """
    round_trips = config.echo_round_trips if round_trips is None else round_trips
    tally = Tally("echo")
    count = echo_sockets(config, round_trips)
    sockets: list[Socket] = []
    # A socket whose join goes unanswered is closed and replaced, and counted: the round
    # trips are those of sockets in a room.
    join_failures, failures = 0, []
    for index in range(count):
        for _ in range(3):
            spec = (target.chat_url(0), target.cookie(index))
            room = f"echo-{index}"
            opened = await open_many([spec], on_text=tally.on_text, concurrency=1, join_room=room, timeout=10)
            failures += opened.failures
            if opened.sockets and not opened.join_timeouts:
                sockets.append(opened.sockets[0])
                break
            join_failures += opened.join_timeouts
            await close_many(opened.sockets, concurrency=1)
        else:
            await close_many(sockets, concurrency=config.connect_concurrency)
            error = f"no socket joined echo-{index}: {'; '.join(failures[:3])}"
            return {"error": error, "join_failures": join_failures}
    samples, lost, made = [], 0, 0
    flooding, stop_flood = None, asyncio.Event()
    flood_counts: dict = {}
    try:
        await settle(target, limit=config.settle_limit)
        if flooder is not None:
            flooding = asyncio.create_task(flooder(target, stop_flood, flood_counts))
        for number in range(ECHO_WARM_UP + round_trips):
            if number == ECHO_WARM_UP:
                cpu_before = procstat.cpu_by_kind(target.pids)
                measuring_since = time.monotonic()
            elif number > ECHO_WARM_UP and seconds is not None and time.monotonic() - measuring_since > seconds:
                break
            sent = time.time()
            sending = send(sockets[number % count], _chat_message(f"echo-{number % count}", "echo", number))
            if sending and await tally.wait(number, 1, since=sent, quiet=5.0, limit=5.0):
                if number >= ECHO_WARM_UP:
                    samples.append(tally.last[number] - sent)
            elif number >= ECHO_WARM_UP:
                lost += 1
            made += number >= ECHO_WARM_UP
            await asyncio.sleep(0.01)
        cpu = procstat.cpu_delta(cpu_before, procstat.cpu_by_kind(target.pids))
    finally:
        stop_flood.set()
        if flooding is not None:
            await flooding
        await close_many(sockets, concurrency=config.connect_concurrency)
    await settle(target, limit=config.settle_limit)
    return {
        "round_trips": summary_ms(samples),
        "lost": lost,
        "tried": made,
        "sockets": count,
        "join_failures": join_failures,
        "open_failures": len(failures),
        "errors": sum(len(socket.errors) for socket in sockets),
        # Server CPU per round trip, by kind of process (the 10 ms pauses between them included).
        "cpu_ms_per_round_trip": {kind: round(1000 * s / max(made, 1), 3) for kind, s in cpu.items()},
        "samples_ms": [round(x * 1000, 3) for x in samples],
        **({"flood": flood_counts} if flooder is not None else {}),
    }


# A reconnect flood (issue 18): one client, in RECONNECT_LOOPS loops at once, opens a socket,
# (logged in) joins a room and writes RECONNECT_FRAMES chat sends, and drops it, over and
# over; a refused handshake is tried again at once. A page whose reconnect loop went wrong
# does this without meaning to; every new socket used to bring a fresh frame budget.
RECONNECT_LOOPS = 8
RECONNECT_FRAMES = 30


def reconnect_flooder(*, logged_in: bool) -> Flooder:
    """A flooder for echo(): the site's extra login (or the peer's anonymous chat) when
    `logged_in`, else an anonymous reader of the liveblog that connects and drops."""

    async def reconnect_flood(target, stop: asyncio.Event, counts: dict) -> None:
        counts.update(opened=0, refused=0, sent_away=0, frames=0)
        cookie = target.flood_cookie if logged_in else None

        def on_text(socket: Socket, data: bytes, at: float) -> None:
            # The site's answer to a client it sent away: a frame, then 4430, from daphne itself.
            if b'"too-many-connections"' in data:
                counts["sent_away"] += 1

        async def loop(index: int) -> None:
            url = target.chat_url(index % target.daphne_count) if logged_in else target.reader_url(index)
            while not stop.is_set():
                try:
                    socket = await connect(url, cookie=cookie, on_text=on_text, timeout=5)
                except Exception:
                    counts["refused"] += 1
                    # No Retry-After honoured: a broken page; the pause only keeps this loop
                    # from spinning the client's own core.
                    await asyncio.sleep(0.01)
                    continue
                counts["opened"] += 1
                try:
                    if logged_in:
                        send(socket, {"command": "join", "room": "flood"})
                        for number in range(RECONNECT_FRAMES):
                            send(socket, _chat_message("flood", "reconnect", number))
                        counts["frames"] += RECONNECT_FRAMES + 1
                finally:
                    await socket.close(timeout=1.0)

        await asyncio.gather(*(loop(index) for index in range(RECONNECT_LOOPS)))

    reconnect_flood.__name__ = f"reconnect_flood_{'logged_in' if logged_in else 'anonymous'}"
    return reconnect_flood


async def churn(target, config: Config) -> dict:
    """Sockets that come and go, and what they leave behind.

    Each of `churn_rounds` rounds: `churn_clients` users (logins of their own on the site), one
    loop each, open a chat socket, join a room, send a message and drop it, for
    `churn_seconds`; then the servers settle, and the Redis keys (by kind) and the memory of
    the daphnes and the workers are read. Round 0 is before any churn.
    """
    rounds = [_churn_reading(target, round_=0, sockets=0)]
    for round_ in range(1, config.churn_rounds + 1):
        stop, opened = asyncio.Event(), [0]
        loops = [asyncio.create_task(_churn_loop(target, index, stop, opened)) for index in range(config.churn_clients)]
        await asyncio.sleep(config.churn_seconds)
        stop.set()
        await asyncio.gather(*loops)
        await settle(target, limit=config.settle_limit)
        rounds.append(_churn_reading(target, round_=round_, sockets=opened[0]))
    return {"rounds": rounds, "clients": config.churn_clients, "seconds": config.churn_seconds}


async def _churn_loop(target, index: int, stop: asyncio.Event, opened: list[int]) -> None:
    url, cookie = target.chat_url(index % target.daphne_count), target.cookie(index)
    room = f"churn-{index}"
    while not stop.is_set():
        try:
            socket = await connect(url, cookie=cookie, timeout=10)
        except Exception:
            await asyncio.sleep(0.2)
            continue
        opened[0] += 1
        try:
            send(socket, {"command": "join", "room": room})
            send(socket, _chat_message(room, "churn", opened[0]))
            # A page stays a moment: its frames reach a worker before it goes.
            await asyncio.sleep(0.2)
        finally:
            await socket.close(timeout=2.0)


def restart_rooms(config: Config) -> list[str]:
    return [f"restart-{index}" for index in range(config.restart_rooms)]


def churn_rooms(config: Config) -> list[str]:
    return [f"churn-{index}" for index in range(config.churn_clients)]


def _churn_reading(target, *, round_: int, sockets: int) -> dict:
    kinds: dict[str, int] = {}
    for key in target.redis_keys():
        # "asgi::session:abc" -> "session", "asgi:__wait__.daphne.response.A?b:..." -> "__wait__": the
        # part after the layer's prefix, up to the first dot; a group's key (a hash) -> "(hash)".
        parts = [part for part in key.split(":")[1:] if part]
        kind = re.split(r"[.?!]", parts[0])[0] if parts else key
        if re.fullmatch(r"[0-9a-f]{32}", kind):
            kind = "(hash)"
        kinds[kind] = kinds.get(kind, 0) + 1
    rss = {
        kind: round(sum(procstat.rss_bytes(pid) for pid in pids) / max(len(pids), 1) / 2**20, 2)
        for kind, pids in target.pids.items()
    }
    return {"round": round_, "sockets": sockets, "keys": sum(kinds.values()), "key_kinds": kinds, "rss_mib": rss}


def _opened(opened) -> dict:
    return {
        "opened": len(opened.sockets),
        "open_failures": len(opened.failures),
        "open_failure_examples": opened.failures[:3],
        "join_timeouts": opened.join_timeouts,
        "not_tried": opened.not_tried,
        "open_seconds": round(opened.seconds, 2),
    }


async def fanout(
    target,
    size: int,
    config: Config,
    *,
    measure_memory: bool,
    messages: int | None = None,
    open_limit: float | None = None,
    settle_after_close: bool = True,
) -> dict:
    """`size` sockets in one room over both daphnes; members send `messages` (default
    `config.messages`) messages, each when the one before reached every socket.

    For each message: how many sockets got it, and the time from its send until the last
    socket had it. Server CPU is counted over the messages only (not the joins or closes).
    """
    messages = config.messages if messages is None else messages
    room = fanout_room(size)
    tag = f"fan{size}"
    tally = Tally(tag)
    specs = _chat_specs(target, size)
    result: dict = {"size": size, "room": room}
    await settle(target, limit=config.settle_limit)
    rss_before = sum(procstat.rss_bytes(pid) for pid in target.daphne_pids)
    open_cpu_before = procstat.cpu_by_kind(target.pids)
    open_client_before = time.process_time()
    opened = await open_many(
        specs, on_text=tally.on_text, concurrency=config.connect_concurrency, join_room=room, limit=open_limit
    )
    sockets: list[Socket] = opened.sockets
    result.update(_opened(opened))
    # What opening (a handshake and a join, for each socket) cost each kind of process, the
    # bench's own client included: the measured reason an opening takes as long as it does.
    open_cpu = procstat.cpu_delta(open_cpu_before, procstat.cpu_by_kind(target.pids))
    open_cpu["client"] = time.process_time() - open_client_before
    result["open_cpu_ms_per_socket"] = {
        kind: round(1000 * seconds / max(len(sockets), 1), 3) for kind, seconds in open_cpu.items()
    }
    try:
        if not sockets:
            return result
        result["settle_after_open_s"] = await settle(target, limit=config.settle_limit)
        if measure_memory:
            rss_after = sum(procstat.rss_bytes(pid) for pid in target.daphne_pids)
            result["memory"] = {
                "daphne_rss_before_bytes": rss_before,
                "daphne_rss_after_bytes": rss_after,
                "idle_sockets": len(sockets),
                "bytes_per_socket": round((rss_after - rss_before) / len(sockets)),
            }
        # Members take turns to send (see SENDS_PER_SOCKET), alternating between the daphnes,
        # among those whose join was answered (the others still count as recipients).
        joined = _answered(sockets)
        senders = joined[: max(1, -(-(messages + 1) // SENDS_PER_SOCKET))]
        await _warm_room(target, senders[0], room, tally, len(sockets), config)

        # A server that closes sockets under load (the peer's daphne does, in the crowd) says so here.
        result["open_after_warm_up"] = sum(socket.open for socket in sockets)
        cpu_before = procstat.cpu_by_kind(target.pids)
        client_before = time.process_time()
        started = time.monotonic()
        sends: dict[int, float] = {}
        complete: list[int] = []
        for number in range(1, messages + 1):
            sender = _sender(senders, number, joined)
            if sender is None or time.monotonic() - started > config.loop_limit:
                break
            sent = time.time()
            sends[number] = sent
            sender.send_json(_chat_message(room, tag, number))
            if await tally.wait(number, len(sockets), since=sent, quiet=config.quiet, limit=config.message_limit):
                complete.append(number)
            await asyncio.sleep(config.gap)
        # Stragglers of the last message, then the servers finish what is queued.
        await asyncio.sleep(config.quiet)
        await settle(target, limit=10)
        elapsed = time.monotonic() - started
        cpu = procstat.cpu_delta(cpu_before, procstat.cpu_by_kind(target.pids))
        client_cpu = time.process_time() - client_before

        figures = _delivery_figures(tally, sockets, sends, complete)
        result.update(figures, elapsed_s=round(elapsed, 2), **_cpu_figures(cpu, client_cpu, figures["delivered"]))
        return result
    finally:
        await close_many(sockets, concurrency=config.connect_concurrency)
        if settle_after_close:
            result["settle_after_close_s"] = await settle(target, limit=config.settle_limit)


def fanout_room(size: int) -> str:
    return f"fan-{size}"


def _chat_specs(target, size: int) -> list[tuple[str, str | None]]:
    """`size` chat sockets, alternating between the daphnes, each with a user's cookie in turn."""
    return [(target.chat_url(index % target.daphne_count), target.cookie(index)) for index in range(size)]


def _answered(sockets: list[Socket]) -> list[Socket]:
    """The sockets whose join was answered (all of them if none was: they may be in the room)."""
    return [socket for socket in sockets if socket.joined.done()] or sockets


async def _warm_room(target, sender: Socket, room: str, tally: Tally, members: int, config: Config) -> None:
    """Message 0, not counted: the first message to a room warms its path up; then the servers settle."""
    sent = time.time()
    send(sender, _chat_message(room, tally.tag.decode(), 0))
    await tally.wait(0, members, since=sent, quiet=config.quiet, limit=config.message_limit)
    await asyncio.sleep(config.quiet)
    await settle(target, limit=10)


def _delivery_figures(tally: Tally, sockets: list[Socket], sends: dict[int, float], complete: list[int]) -> dict:
    """What reached whom of the numbered messages sent (number -> when), and how late: to the
    last socket over the `complete` messages (those every socket had), and per copy."""
    delivered = sum(tally.count[number] for number in sends)
    expected = len(sockets) * len(sends)
    to_last = [tally.last[number] - sends[number] for number in complete]
    per_copy = [at - sends[number] for number in sends for at in tally.arrivals[number]]
    return {
        "messages": len(sends),
        "complete_messages": len(complete),
        "delivered": delivered,
        "expected": expected,
        "delivered_pct": round(100 * delivered / expected, 3) if expected else None,
        "open_at_end": sum(socket.open for socket in sockets),
        "repeats": tally.repeats,
        "out_of_order": tally.out_of_order,
        "to_last_socket": summary_ms(to_last),
        "to_last_socket_samples_ms": [round(value * 1000, 3) for value in to_last],
        "per_copy": summary_ms(per_copy),
        "per_copy_quantiles_ms": quantiles_ms(per_copy),
        "socket_errors": sum(len(socket.errors) for socket in sockets),
    }


def _cpu_figures(cpu: dict, client_cpu: float, delivered: int) -> dict:
    """Server CPU (by kind of process) and the client's, in all and per delivery."""
    total = sum(cpu.values())
    return {
        "cpu_s": round(total, 3),
        "cpu_by_kind_s": {kind: round(value, 3) for kind, value in cpu.items()},
        "client_cpu_s": round(client_cpu, 3),
        "cpu_ms_per_1000_deliveries": round(1000 * 1000 * total / delivered, 2) if delivered else None,
        "deliveries_per_cpu_s": round(delivered / total) if total else None,
    }


async def sustained(target, config: Config) -> dict:
    """`sustained_sockets` sockets in one room; members send `sustained_rate` messages a
    second to it for `sustained_seconds`, each at its time on the clock whatever has
    arrived (open loop), taking turns so that none sends more than the site allows.

    The figures: copies delivered, the time from each send until the last socket had it,
    the copies of earlier messages still on their way when the last one went out (the
    backlog), how long after the last send the last copy arrived, and copies that reached a
    socket after a later message.
    """
    size, room, tag = config.sustained_sockets, SUSTAINED_ROOM, "sustained"
    tally = Tally(tag)
    specs = _chat_specs(target, size)
    result: dict = {
        "size": size,
        "rate_per_s": config.sustained_rate,
        "seconds": config.sustained_seconds,
        "senders": config.sustained_senders,
    }
    await settle(target, limit=config.settle_limit)
    opened = await open_many(specs, on_text=tally.on_text, concurrency=config.connect_concurrency, join_room=room)
    sockets = opened.sockets
    result.update(_opened(opened))
    try:
        if not sockets:
            return result
        await settle(target, limit=config.settle_limit)
        joined = _answered(sockets)
        senders = joined[: config.sustained_senders]
        await _warm_room(target, senders[0], room, tally, len(sockets), config)

        count = round(config.sustained_rate * config.sustained_seconds)
        backlog = None
        interval = 1 / config.sustained_rate
        cpu_before = procstat.cpu_by_kind(target.pids)
        client_before = time.process_time()
        sends: dict[int, float] = {}
        lateness: list[float] = []
        began = time.time()
        for number in range(1, count + 1):
            due = began + (number - 1) * interval
            if due > time.time():
                await asyncio.sleep(due - time.time())
            sender = _sender(senders, number, joined)
            if sender is None:
                break
            if number == count:
                # What the sockets still lack of the messages before, as the last one goes out.
                backlog = len(sockets) * len(sends) - sum(tally.count[earlier] for earlier in sends)
            sends[number] = time.time()
            lateness.append(sends[number] - due)
            sender.send_json(_chat_message(room, tag, number))
        last_sent = time.time()
        if sends:
            await tally.wait(max(sends), len(sockets), since=last_sent, quiet=config.quiet, limit=config.message_limit)
        drained = max((tally.last.get(number, last_sent) for number in sends), default=last_sent)
        await asyncio.sleep(config.quiet)
        await settle(target, limit=10)
        cpu = procstat.cpu_delta(cpu_before, procstat.cpu_by_kind(target.pids))
        client_cpu = time.process_time() - client_before

        complete = [number for number in sends if tally.count[number] >= len(sockets)]
        figures = _delivery_figures(tally, sockets, sends, complete)
        result.update(
            figures,
            backlog_at_last_send=backlog,
            drain_after_last_send_s=round(max(drained - last_sent, 0.0), 3),
            # How far behind its clock the client sent (its own CPU is one of the 2 cores' load).
            send_lateness=summary_ms(lateness),
            **_cpu_figures(cpu, client_cpu, figures["delivered"]),
        )
        return result
    finally:
        await close_many(sockets, concurrency=config.connect_concurrency)
        result["settle_after_close_s"] = await settle(target, limit=config.settle_limit)


SUSTAINED_ROOM = "sustained"


async def join_burst(target, config: Config) -> dict:
    """`config.join_burst` sockets, open over both daphnes and idle, all send a join of one
    room at the same moment (the start of a live event): the time until the last join reply,
    and how many replies came within `config.message_limit`."""
    size = config.join_burst
    room = "burst"
    specs = _chat_specs(target, size)
    await settle(target, limit=config.settle_limit)
    counts = CountsShown(room, Tally("burst").on_text)
    opened = await open_many(specs, on_text=counts.on_text, concurrency=config.connect_concurrency)
    sockets = opened.sockets
    result: dict = {"size": size, "opened": len(sockets), "open_failures": len(opened.failures)}
    try:
        await settle(target, limit=config.settle_limit)
        cpu_before = procstat.cpu_by_kind(target.pids)
        started = time.time()
        for socket in sockets:
            send(socket, {"command": "join", "room": room})
        waiting = [asyncio.shield(socket.joined) for socket in sockets]
        done, _ = await asyncio.wait(waiting, timeout=max(config.message_limit, 30.0))
        replies = sorted(future.result() - started for future in done)
        result.update(
            answered=len(replies),
            to_last_reply_s=round(replies[-1], 3) if replies else None,
            to_median_reply_s=round(replies[len(replies) // 2], 3) if replies else None,
            joins_per_s=round(len(replies) / replies[-1], 1) if replies else None,
        )
        await settle(target, limit=config.settle_limit)
        cpu = procstat.cpu_delta(cpu_before, procstat.cpu_by_kind(target.pids))
        result["cpu_ms_per_join"] = {kind: round(1000 * s / max(len(replies), 1), 3) for kind, s in cpu.items()}
        result["count"] = counts.agreement(sockets, since=started)
    finally:
        await close_many(sockets, concurrency=config.connect_concurrency)
    await settle(target, limit=config.settle_limit)
    return result


class CountsShown:
    """The member count of one room each socket shows, as the chat page does: from the join reply
    and the presence frames, a frame applying only if its seq is newer than the one shown."""

    def __init__(self, room: str, then: Callable):
        self.room = room
        self.then = then
        # Per socket: the seq and count shown, and when the count shown last changed.
        self.shown: dict[int, tuple[int, int, float]] = {}

    def on_text(self, socket: Socket, data: bytes, at: float) -> None:
        if b'"members"' in data:
            frame = json.loads(data)
            # As chat.js: the join reply, the room's notices and the lobby's counts (which every
            # socket gets, before its join too) each apply if newer than the count shown.
            mine = frame.get("join") == self.room or frame.get("room") == self.room
            if mine and isinstance(frame.get("seq"), int):
                seq, members = frame["seq"], frame["members"]
                shown = self.shown.get(id(socket))
                if shown is None or seq > shown[0]:
                    changed = at if shown is None or shown[1] != members else shown[2]
                    self.shown[id(socket)] = (seq, members, changed)
        self.then(socket, data, at)

    def agreement(self, sockets: list[Socket], *, since: float) -> dict:
        """The count of the newest frame any socket had, how many sockets show it, and the
        seconds from `since` until the last of those showed it (None where no frame had a
        count: the peer has none)."""
        views = [self.shown[id(socket)] for socket in sockets if id(socket) in self.shown]
        if not views:
            return {"final": None, "showing_final": 0, "to_all_right_s": None}
        final = max(views)[1]
        right = [changed for _, members, changed in views if members == final]
        everywhere = len(right) == len(sockets)
        return {
            "final": final,
            "showing_final": len(right),
            "to_all_right_s": round(max(right) - since, 3) if everywhere else None,
        }


async def liveblog(target, config: Config) -> dict:
    """Streams open on one liveblog; a separate process saves posts through the ORM.

    The driver (bench/liveblog_driver.py) calls liveblog.services.post_create and says when
    it started; the time runs from then until the last stream has the post.
    """
    tally = Tally("live")
    size = config.liveblog_streams
    specs = [(target.liveblog_url(index % target.daphne_count), None) for index in range(size)]
    result: dict = {"streams": size}
    await settle(target, limit=config.settle_limit)
    opened = await open_many(specs, on_text=tally.on_text, concurrency=config.connect_concurrency)
    sockets = opened.sockets
    result.update(opened=len(sockets), open_failures=len(opened.failures), open_seconds=round(opened.seconds, 2))
    if not sockets:
        result["error"] = "; ".join(opened.failures[:3])
        return result
    log = open(Path(target.stack.log_dir) / "liveblog-driver.log", "ab")
    driver = await asyncio.create_subprocess_exec(
        target.python,
        "-m",
        "bench.liveblog_driver",
        LIVEBLOG,
        "live",
        cwd=str(target.stack.site),
        env=target.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        await settle(target, limit=config.settle_limit)
        starts: dict[int, float] = {}
        saves: list[float] = []
        complete: list[int] = []
        began = time.monotonic()
        for number in range(config.liveblog_posts + 1):
            if time.monotonic() - began > config.loop_limit:
                break
            driver.stdin.write(f"{number}\n".encode())
            await driver.stdin.drain()
            line = await asyncio.wait_for(_posted_line(driver), 60)
            started, saved = line["started"], line["saved"]
            done = await tally.wait(number, len(sockets), since=started, quiet=config.quiet, limit=config.message_limit)
            if number == 0:
                continue  # Warm-up.
            starts[number] = started
            saves.append(saved - started)
            if done:
                complete.append(number)
            await asyncio.sleep(config.gap)
        await asyncio.sleep(config.quiet)
        delivered = sum(tally.count[number] for number in starts)
        expected = len(sockets) * len(starts)
        per_copy = [at - starts[number] for number in starts for at in tally.arrivals[number]]
        result.update(
            posts=len(starts),
            complete_posts=len(complete),
            delivered=delivered,
            expected=expected,
            delivered_pct=round(100 * delivered / expected, 3) if expected else None,
            to_last_stream=summary_ms([tally.last[number] - starts[number] for number in complete]),
            to_last_stream_samples_ms=[round((tally.last[n] - starts[n]) * 1000, 3) for n in complete],
            per_copy=summary_ms(per_copy),
            per_copy_quantiles_ms=quantiles_ms(per_copy),
            post_create=summary_ms(saves),
        )
        return result
    finally:
        driver.stdin.close()
        try:
            await asyncio.wait_for(driver.wait(), 15)
        except TimeoutError:
            driver.kill()
            await driver.wait()
        log.close()
        await close_many(sockets, concurrency=config.connect_concurrency)
        result["settle_after_close_s"] = await settle(target, limit=config.settle_limit)


async def _posted_line(driver) -> dict:
    while True:
        line = await driver.stdout.readline()
        if not line:
            raise RuntimeError("the liveblog driver exited; see liveblog-driver.log")
        if line.startswith(b"POSTED "):
            return json.loads(line[len(b"POSTED ") :])


async def http_pages(ports: list[int], path: str, config: Config) -> dict:
    """`http_clients` processes GET `path` in a loop, one request at a time each, spread over ports."""
    start_at = time.time() + 1.5
    processes = []
    for index in range(config.http_clients):
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.http_load",
                "--port",
                str(ports[index % len(ports)]),
                "--path",
                path,
                "--seconds",
                str(config.http_seconds),
                "--max-requests",
                str(config.http_max_requests),
                "--start-at",
                repr(start_at),
                cwd=str(REPO),
                stdout=asyncio.subprocess.PIPE,
            )
        )
    reports = []
    for process in processes:
        try:
            output, _ = await asyncio.wait_for(process.communicate(), config.http_seconds + 60)
        except TimeoutError:
            process.kill()
            await process.wait()
            continue
        reports.append(json.loads(output))
    latencies = [value for report in reports for value in report["latencies"]]
    ok = sum(report["ok"] for report in reports)
    elapsed = max((report["elapsed"] for report in reports), default=0.0)
    return {
        "clients": config.http_clients,
        "path": path,
        "ok": ok,
        "errors": sum(report["errors"] for report in reports),
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(ok / elapsed, 1) if elapsed else None,
        "latency": summary_ms(latencies),
    }
