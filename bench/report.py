"""Writes the benchmark's results: results.json, the PNG plots and the markdown report.

`write(out, results)` puts the markdown at `out` and everything else in a folder beside
it named after it (docs/benchmarks.md -> docs/benchmarks/).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

from .scenarios import FLOOD_FRAMES_PER_S, FLOOD_RECONNECT_S, RECONNECT_FRAMES, RECONNECT_LOOPS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

# Targets for the project's layer (issue 3).
FANOUT_P99_MS = 100.0
ECHO_P50_MS = 2.0
ECHO_P99_MS = 10.0
# Seconds within which every socket of a join burst must have its join reply.
JOIN_BURST_S = 2.0
# A socket that floods may slow another socket's echo (p50) by this much at most.
FLOOD_SLOWDOWN = 2.0
# Issue 11: sustained fan-out, to the last socket; the crowd (10,000 sockets), to the last
# socket and memory per idle one; deliveries per CPU-second (Centrifugo's, about).
SUSTAINED_P99_MS = 100.0
CROWD_P99_MS = 1000.0
CROWD_KIB_PER_SOCKET = 10.0
DELIVERIES_PER_CPU_S = 12_500
# Issue 18: one client reconnecting in a loop may slow a bystander's echo (p50) by this much at
# most, with no round trip lost; after the first round of churn, Redis keys and the daphnes'
# and workers' memory stay level: the keys within CHURN_KEYS_SLACK (or 5%) of the first
# round's, the memory within CHURN_MIB_PER_ROUND a round.
# Issue 19: 10,000 sockets opened within this; a rolling restart of both daphnes: every page
# back and caught up, a page's gap p99 within RESTART_GAP_P99_S, the whole within the stop
# windows plus RESTART_SLACK_S, refused handshakes under RESTART_REFUSED_FRACTION of the
# sockets, nothing missed; a reconnect at most RECONNECT_WORKER_CPU_MS of worker CPU.
CROWD_OPEN_S = 10.0
RESTART_GAP_P99_S = 10.0
RESTART_SLACK_S = 10.0
RESTART_REFUSED_FRACTION = 0.05
RECONNECT_WORKER_CPU_MS = 1.0
RECONNECT_SLOWDOWN = 2.0
CHURN_KEYS_SLACK = 50
CHURN_MIB_PER_ROUND = 0.5
RECONNECT_FLOODS = (
    ("echo_reconnect_user", "a logged-in client"),
    ("echo_reconnect_anonymous", "an anonymous client"),
)

ORDER = ["fanout", "before", "stock", "peer"]
COLORS = {"fanout": "#1b9e77", "before": "#66a61e", "stock": "#d95f02", "peer": "#7570b3"}


# Formatting


def _n(value) -> str:
    return "—" if value is None else f"{value:,}"


def _ms(value) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f} ms" if value < 1000 else f"{value / 1000:,.2f} s"


def _pct(value) -> str:
    if value is None:
        return "—"
    return "100%" if value == 100 else f"{value:.1f}%"


def _kib(value) -> str:
    return "—" if value is None else f"{value / 1024:,.1f} KiB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _targets(results: dict) -> list[tuple[str, dict]]:
    return [(key, results["targets"][key]) for key in ORDER if key in results["targets"]]


def _fanout(target: dict, size: int) -> dict | None:
    return next((entry for entry in target.get("fanout", []) if entry["size"] == size), None)


def _get(mapping: dict | None, *path, default=None):
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


def _load_range(target: dict) -> str:
    loads = [value for phase in target.get("phases", []) for value in (phase["load_before"][0], phase["load_after"][0])]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"


def _gauge_range(results: dict) -> str:
    """The speed gauge (bench.run.speed_gauge) over every phase of the run: least and most ms."""
    gauges = [
        phase["gauge_ms"]
        for target in results["targets"].values()
        for phase in target.get("phases", [])
        if "gauge_ms" in phase
    ]
    return f"{min(gauges):g}–{max(gauges):g} ms" if gauges else "not taken"


def _fully_measured(entry: dict | None) -> bool:
    return bool(entry) and entry.get("complete_messages") == entry.get("messages") and entry.get("messages")


# Targets


def evaluate(results: dict) -> list[list[str]]:
    """Rows of the targets table: target, measured, met or missed (and why)."""
    project = results["targets"].get("fanout")
    if project is None:
        return []
    peer = results["targets"].get("peer")
    sizes = sorted(results["config"]["sizes"])
    largest = sizes[-1]
    rows = []

    # 100% delivered at every size.
    parts, lost = [], []
    for size in sizes:
        entry = _fanout(project, size)
        pct = _get(entry, "delivered_pct")
        parts.append(f"{size:,}: {_pct(pct)}")
        if pct != 100 or _get(entry, "opened") != size:
            lost.append(size)
    live = project.get("liveblog")
    parts.append(f"liveblog {_n(_get(live, 'opened'))} streams: {_pct(_get(live, 'delivered_pct'))}")
    live_ok = _get(live, "delivered_pct") == 100
    if not lost and live_ok:
        verdict = "**met**"
    else:
        where = [f"{size:,} sockets" for size in lost] + ([] if live_ok else ["the liveblog"])
        verdict = (
            f"**missed** at {', '.join(where)}: see the fan-out table (sockets that failed to open "
            "count as not delivered) and the layer's warnings in the phase's logs"
        )
    rows.append(["100% delivered at every size", ", ".join(parts), verdict])

    # Fan-out p99 to the largest room.
    entry = _fanout(project, largest)
    p99 = _get(entry, "to_last_socket", "p99")
    measured = (
        f"p99 {_ms(p99)} (p50 {_ms(_get(entry, 'to_last_socket', 'p50'))}, {_n(_get(entry, 'messages'))} messages)"
    )
    if p99 is not None and _fully_measured(entry) and p99 < FANOUT_P99_MS:
        verdict = "**met**"
    elif p99 is None or not _fully_measured(entry):
        verdict = "**missed**: not every message reached every socket"
    else:
        verdict = "**missed**: " + _fanout_cost(entry, project)
    rows.append([f"fan-out to {largest:,} sockets: p99 under {FANOUT_P99_MS:.0f} ms", measured, verdict])

    # Echo.
    echo = project.get("echo", {})
    cpu = echo.get("cpu_ms_per_round_trip", {})
    for name, limit in (("p50", ECHO_P50_MS), ("p99", ECHO_P99_MS)):
        value = _get(echo, "round_trips", name)
        if "round_trips" not in echo:
            verdict = "not measured"
        elif value is not None and value < limit and not echo.get("lost"):
            verdict = "**met**"
        else:
            verdict = "**missed**: " + _echo_cost(echo, cpu, name, project)
        rows.append([f"echo round trip {name} under {limit:.0f} ms", _ms(value), verdict])

    # A join burst (issue 11): every socket answered within JOIN_BURST_S.
    burst = project.get("join_burst", {})
    if burst.get("opened"):
        last = burst.get("to_last_reply_s")
        measured = f"{burst.get('answered', 0):,}/{burst['opened']:,} answered, the last after {last} s"
        agreed = _get(burst, "count", "to_all_right_s")
        if agreed is not None:
            measured += f"; every socket showed the room's count ({burst['count']['final']}) after {agreed} s"
        answered = burst.get("answered") == burst["opened"] and last is not None and last <= JOIN_BURST_S
        if answered and agreed is not None:
            verdict = "**met**"
        elif answered:
            showing = _get(burst, "count", "showing_final")
            verdict = f"**missed**: answered in time, but only {showing:,} sockets showed the room's final count"
        else:
            cpu = burst.get("cpu_ms_per_join", {})
            verdict = (
                f"**missed**: {burst.get('joins_per_s')} joins a second; no lock orders them any more (presence "
                "is one Redis script; the user, the room and the history are read with plain statements), but "
                f"each join costs {sum(cpu.values()):.1f} ms of CPU "
                f"({', '.join(f'{kind} {ms}' for kind, ms in cpu.items())} ms): in the worker the channel session's "
                "read and write, the presence script, the group add and the reply, each a Redis round trip; the "
                "clients share the two cores"
            )
        rows.append([f"join burst of {burst['size']:,} sockets answered within {JOIN_BURST_S:g} s", measured, verdict])

    # A flooding socket must not slow another's echo by more than FLOOD_SLOWDOWN (issue 12).
    flooded = project.get("echo_flooded", {})
    alone, beside = _get(echo, "round_trips", "p50"), _get(flooded, "round_trips", "p50")
    if alone and beside:
        ratio = beside / alone
        measured = f"p50 {_ms(beside)} beside the flood, {_ms(alone)} alone ({ratio:.1f}×)"
        if ratio <= FLOOD_SLOWDOWN and not flooded.get("lost"):
            verdict = "**met**"
        else:
            verdict = f"**missed**: {flooded.get('lost', 0)} round trips lost, the flood cost {ratio:.1f}×"
        rows.append([f"echo beside a flooding socket: at most {FLOOD_SLOWDOWN:.0f}× slower", measured, verdict])

    rows += _issue_11_rows(project)
    rows += _issue_18_rows(project)
    rows += _issue_19_rows(project, cores=_get(results, "machine", "nproc"), peer=peer)

    # Deliveries per CPU-second against the peer, at the largest size.
    ours = _get(_fanout(project, largest), "deliveries_per_cpu_s")
    theirs = _get(_fanout(peer, largest), "deliveries_per_cpu_s") if peer else None
    measured = f"{_n(ours)} vs the peer's {_n(theirs)}"
    if ours and theirs:
        measured += f" ({ours / theirs:.1f}×)"
    if ours is None or theirs is None:
        verdict = "not measured" + ("" if peer else ": the peer did not run")
    elif ours >= theirs:
        verdict = "**met**"
    else:
        verdict = (
            f"**missed**: {_per_delivery_us(_fanout(project, largest))} µs of server CPU per delivery against "
            f"the peer's {_per_delivery_us(_fanout(peer, largest))} µs"
        )
    rows.append(
        [f"fan-out deliveries per CPU-second at {largest:,} sockets, at least the Channels 4 peer's", measured, verdict]
    )
    return rows


def _sustained_cost(entry: dict, target: dict) -> str:
    """Why an open-loop fan-out's last copies are late: what each message costs the daphnes,
    and how much of each second that keeps them busy at the rate sent."""
    daphne_ms = 1000 * entry["cpu_by_kind_s"].get("daphne", 0) / entry["messages"] / 2
    busy = daphne_ms * entry["rate_per_s"] / 1000
    return (
        _fanout_cost(entry, target)
        + f"; at {entry['rate_per_s']:g} messages a second each daphne is writing {100 * busy:.0f}% of the time, "
        "so a message often finds it still writing the one before"
    )


def _issue_11_rows(project: dict) -> list[list[str]]:
    """Sustained fan-out, the crowd of 10,000 sockets, and deliveries per CPU-second against 12,500."""
    rows = []
    sus = project.get("sustained")
    if sus and sus.get("messages"):
        p99 = _get(sus, "to_last_socket", "p99")
        measured = (
            f"{_pct(sus['delivered_pct'])} delivered, last socket p50 {_ms(_get(sus, 'to_last_socket', 'p50'))} "
            f"p99 {_ms(p99)}; {sus['out_of_order']} out of order; backlog {_n(sus['backlog_at_last_send'])} copies "
            f"at the last send"
        )
        whole = sus["opened"] == sus["size"] and sus["delivered_pct"] == 100 and not sus["out_of_order"]
        if whole and p99 is not None and p99 <= SUSTAINED_P99_MS:
            verdict = "**met**"
        elif not whole:
            verdict = "**missed**: sockets not open, copies lost or out of order (see the sustained fan-out table)"
        else:
            verdict = "**missed**: " + _sustained_cost(sus, project)
        rows.append(
            [
                f"sustained fan-out ({sus['size']:,} sockets, {sus['rate_per_s']:g} messages/s for "
                f"{sus['seconds']:g} s): 100% delivered, last socket p99 under {SUSTAINED_P99_MS:.0f} ms",
                measured,
                verdict,
            ]
        )
    crowd = project.get("crowd")
    if crowd and crowd.get("messages"):
        p99 = _get(crowd, "to_last_socket", "p99")
        measured = (
            f"{crowd['opened']:,}/{crowd['size']:,} open, {_pct(crowd['delivered_pct'])} delivered, "
            f"last socket p50 {_ms(_get(crowd, 'to_last_socket', 'p50'))} p99 {_ms(p99)}"
        )
        whole = crowd["opened"] == crowd["size"] and crowd["delivered_pct"] == 100
        if whole and p99 is not None and p99 <= CROWD_P99_MS:
            verdict = "**met**"
        elif not whole:
            verdict = (
                f"**missed**: not every socket opened or had every message (see the {crowd['size']:,} sockets table)"
            )
        else:
            verdict = "**missed**: " + _fanout_cost(crowd, project)
        rows.append(
            [
                f"{crowd['size']:,} sockets: 100% delivered, last socket p99 under {CROWD_P99_MS / 1000:g} s",
                measured,
                verdict,
            ]
        )
        memory = crowd.get("memory", {})
        per_socket = memory.get("bytes_per_socket")
        if per_socket is not None:
            verdict = (
                "**met**"
                if per_socket <= CROWD_KIB_PER_SOCKET * 1024
                else "**missed**: what daphne 1.4.2 holds per connection (its HTTP and WebSocket protocol "
                "objects, autobahn's, Twisted's transport and buffers, the socket's entry in the layer's "
                "process-local bookkeeping), measured as the daphnes' RSS growth; not broken down further"
            )
            rows.append(
                [
                    f"memory per idle socket at {crowd['opened']:,} sockets under {CROWD_KIB_PER_SOCKET:g} KiB",
                    _kib(per_socket),
                    verdict,
                ]
            )
    sizes = [entry["size"] for entry in project.get("fanout", [])]
    candidates = [
        (f"fan-out to {max(sizes):,} sockets" if sizes else "", _fanout(project, max(sizes)) if sizes else None),
        ("the crowd", crowd),
        ("sustained fan-out", sus),
    ]
    measured_at = [(label, entry) for label, entry in candidates if entry and entry.get("deliveries_per_cpu_s")]
    if measured_at:
        parts = [f"{label}: {_n(entry['deliveries_per_cpu_s'])}" for label, entry in measured_at]
        low = min(entry["deliveries_per_cpu_s"] for _, entry in measured_at)
        if low >= DELIVERIES_PER_CPU_S:
            verdict = "**met**"
        else:
            worst = min(measured_at, key=lambda item: item[1]["deliveries_per_cpu_s"])[1]
            kinds = ", ".join(
                f"{kind} {1e6 * value / worst['delivered']:.0f} µs" for kind, value in worst["cpu_by_kind_s"].items()
            )
            top_kind, top = max(worst["cpu_by_kind_s"].items(), key=lambda item: item[1])
            verdict = (
                f"**missed**: {_per_delivery_us(worst)} µs of server CPU per delivery ({kinds}) where 12,500 a "
                f"second leaves 80 µs; {top_kind} takes {100 * top / worst['cpu_s']:.0f}% of it"
                + (
                    " (daphne 1.4.2 frames each copy with autobahn and writes it to its socket, in Python)"
                    if top_kind == "daphne"
                    else ""
                )
            )
        rows.append([f"at least {DELIVERIES_PER_CPU_S:,} deliveries per CPU-second", "; ".join(parts), verdict])
    return rows


def _reconnect_verdict(target: dict, key: str) -> tuple[str, bool | None]:
    """What a bystander's echo was beside one reconnect flood, and whether it kept within the target."""
    quiet, flooded = target.get("echo_quiet", {}), target.get(key, {})
    alone, beside = _get(quiet, "round_trips", "p50"), _get(flooded, "round_trips", "p50")
    if not alone or not beside:
        return "not measured", None
    counts = flooded.get("flood", {})
    served = counts.get("opened", 0) - counts.get("sent_away", 0)
    ratio = beside / alone
    measured = (
        f"p50 {_ms(beside)} beside it, {_ms(alone)} quiet ({ratio:.1f}×), {flooded.get('lost', 0)} of "
        f"{flooded.get('tried', 0)} lost; of its handshakes {_n(counts.get('refused'))} were refused, "
        f"{_n(counts.get('sent_away'))} sent away (4430) and {_n(served)} served"
    )
    return measured, ratio <= RECONNECT_SLOWDOWN and not flooded.get("lost")


def churn_level(churn: dict | None) -> dict | None:
    """From the first round of churn to the last: growth of the Redis keys and of each kind of
    process's memory per round, and whether that is level."""
    rounds = (churn or {}).get("rounds", [])
    if len(rounds) < 3:
        return None
    first, last = rounds[1], rounds[-1]
    keys_growth = last["keys"] - first["keys"]
    per_round = {
        kind: round((last["rss_mib"][kind] - first["rss_mib"][kind]) / (len(rounds) - 2), 2)
        for kind in ("daphne", "worker")
        if kind in first["rss_mib"]
    }
    level = keys_growth <= max(CHURN_KEYS_SLACK, 0.05 * first["keys"]) and all(
        growth <= CHURN_MIB_PER_ROUND for growth in per_round.values()
    )
    return {"keys_growth": keys_growth, "mib_per_round": per_round, "level": level, "first": first, "last": last}


def _issue_18_rows(project: dict) -> list[list[str]]:
    rows = []
    for key, who in RECONNECT_FLOODS:
        measured, met = _reconnect_verdict(project, key)
        if met is None:
            verdict = "not measured"
        elif met:
            verdict = "**met**"
        else:
            verdict = "**missed**: see the reconnect floods section"
        rows.append(
            [
                f"a bystander's echo beside {who} reconnecting in a loop: at most {RECONNECT_SLOWDOWN:.0f}× slower, "
                "none lost",
                measured,
                verdict,
            ]
        )
    level = churn_level(project.get("churn"))
    if level is not None:
        first, last = level["first"], level["last"]
        memory = ", ".join(f"{kind} {growth:+.2f} MiB" for kind, growth in level["mib_per_round"].items())
        measured = (
            f"Redis keys {_n(first['keys'])} after round 1, {_n(last['keys'])} after round {last['round']}; "
            f"memory per process and round after the first: {memory}"
        )
        verdict = "**met**" if level["level"] else "**missed**: see the churn section"
        rows.append(["churn: Redis keys and daphne and worker memory level after the first round", measured, verdict])
    return rows


def _open_cost(crowd: dict, cores: int | None, peer: dict | None) -> str:
    """Why opening the crowd took as long as it did: the CPU each open cost, by process, and the
    time that CPU alone takes on this machine's cores."""
    per = crowd.get("open_cpu_ms_per_socket")
    if not per:
        return "see the sockets table (each open is a handshake and a join)"
    total = sum(per.values())
    parts = ", ".join(f"{kind} {ms:.2f}" for kind, ms in per.items())
    why = (
        f"each open (a logged-in handshake and a join, each through Redis to a worker) cost {total:.1f} ms of "
        f"CPU ({parts} ms)"
    )
    if cores:
        floor = total * crowd["opened"] / 1000 / cores
        why += f": {floor:.0f} s for {_n(crowd['opened'])} sockets with all {cores} cores busy and nothing waiting"
    peer_open = _get(peer, "crowd", "open_seconds")
    if peer_open is not None:
        why += f" (the peer, whose consumers run in its daphne: {peer_open:.1f} s)"
    return why


def _issue_19_rows(project: dict, *, cores: int | None = None, peer: dict | None = None) -> list[list[str]]:
    rows = []
    crowd = project.get("crowd")
    if crowd and "open_seconds" in crowd:
        whole = crowd.get("opened") == crowd.get("size")
        measured = f"{_n(crowd.get('opened'))}/{_n(crowd.get('size'))} open in {crowd['open_seconds']:.1f} s"
        met = whole and crowd["open_seconds"] <= CROWD_OPEN_S
        verdict = "**met**" if met else "**missed**: " + _open_cost(crowd, cores, peer)
        rows.append([f"{_n(crowd.get('size'))} sockets opened within {CROWD_OPEN_S:g} s", measured, verdict])
    restart = project.get("restart")
    if restart and "gap" in restart:
        stops = sum(entry["stop_s"] + entry["start_s"] for entry in restart["restarts"])
        gap_p99 = (_get(restart, "gap", "p99") or 0) / 1000
        refused = restart["refused_handshakes"]
        missed = restart["missed_posts"] + restart["missed_messages"]
        measured = (
            f"{_n(restart['back'])}/{_n(restart['sockets'])} back; gap p50 {_ms(_get(restart, 'gap', 'p50'))}, "
            f"p99 {_ms(_get(restart, 'gap', 'p99'))}; {_n(refused)} handshakes refused, "
            f"{_n(restart['busy_answers'])} told busy; {missed} posts and messages missed; the two restarts took "
            f"{stops:.0f} s"
        )
        met = (
            restart["back"] == restart["sockets"]
            and gap_p99 <= RESTART_GAP_P99_S
            and refused <= RESTART_REFUSED_FRACTION * restart["sockets"]
            and missed == 0
        )
        rows.append(
            [
                f"rolling restart of {_n(restart['sockets'])} sockets: every page back and caught up, gap p99 within "
                f"{RESTART_GAP_P99_S:g} s, refused under {100 * RESTART_REFUSED_FRACTION:g}% of the sockets, "
                "nothing missed",
                measured,
                "**met**: the liveblog pages are caught up by the daphne they come back to, from the "
                "liveblog's last changes in Redis (channels1_kit.streams); only the chat members' rejoins and "
                "pages further behind reach a worker"
                if met
                else "**missed**: see the rolling restart section",
            ]
        )
        per = restart.get("worker_cpu_ms_per_reconnect")
        if per is not None:
            rows.append(
                [
                    f"worker CPU per reconnect during the restart at most {RECONNECT_WORKER_CPU_MS:g} ms",
                    f"{per} ms (the whole window's worker CPU, posts and messages included, over "
                    f"{_n(restart['reconnects'])} reconnects)",
                    "**met**: no worker hears of a liveblog page its daphne catches up (channels1_kit.streams); "
                    "the figure is the chat members' rejoins, the posts and the messages over every reconnect"
                    if per <= RECONNECT_WORKER_CPU_MS
                    else "**missed**: each reconnect is a connect (a chat member's also a join) through Redis to a "
                    "worker, and a disconnect; the window's posts and messages are in the figure too",
                ]
            )
    return rows


def _refusal_kinds(restart: dict) -> str:
    """Why the handshakes failed, as "(TimeoutError 1,200, ...)"; nothing for none or an older run."""
    kinds = restart.get("refused_why") or {}
    return f" ({', '.join(f'{kind} {_n(count)}' for kind, count in kinds.items())})" if kinds else ""


def _restart_section(targets: list[tuple[str, dict]]) -> list[str]:
    rows = []
    for _, target in targets:
        restart = target.get("restart")
        if not restart:
            continue
        if "gap" not in restart:
            rows.append([target["label"], restart.get("error", "not measured")] + [""] * 8)
            continue
        rows.append(
            [
                target["label"],
                f"{_n(restart['back'])}/{_n(restart['sockets'])}",
                _ms(_get(restart, "gap", "p50")),
                _ms(_get(restart, "gap", "p99")),
                f"{restart['gap_max_s']} s" if restart.get("gap_max_s") is not None else "—",
                f"{_n(restart['refused_handshakes'])}{_refusal_kinds(restart)} / {_n(restart['busy_answers'])}",
                f"{restart['missed_posts']} of {restart['posts']} posts ({restart['pages_missing_something']} pages), "
                f"{restart['missed_messages']} messages",
                ", ".join(f"{entry['stop_s']} + {entry['start_s']} s" for entry in restart["restarts"]),
                f"{restart.get('worker_cpu_ms_per_reconnect')} ms",
                f"{_ms(_get(restart, 'echo', 'p50'))} / {_ms(_get(restart, 'echo', 'p99'))}, "
                f"{restart['echo_lost']} lost",
            ]
        )
    if not rows:
        return []
    return [
        "",
        "### Rolling restart of both daphnes",
        "",
        "The pages as the site's behave (bench/restart.py): liveblog pages reconnect with `since`, chat members "
        "rejoin with `since`, each waits as told (`retry_after`) or as WebSocketBridge does, through whichever "
        "daphne listens. A post a second and a chat message every 2 s all along; each daphne gets SIGTERM in turn "
        "(the production drain, 20 s) and is started again on its port once it has exited. Not run for the peer: "
        "it has no liveblog and no catch-up to come back with.",
        "",
        _table(
            [
                "",
                "back",
                "gap p50",
                "gap p99",
                "gap max",
                "refused / told busy",
                "missed",
                "stop + start of each daphne",
                "worker CPU per reconnect",
                "bystander's echo p50 / p99",
            ],
            rows,
        ),
    ]


def _clients_section(targets: list[tuple[str, dict]]) -> list[str]:
    flood_rows, churn_rows = [], []
    for _, target in targets:
        for key, who in RECONNECT_FLOODS:
            echo = target.get(key)
            if echo and "round_trips" in echo:
                trips, counts = echo["round_trips"], echo.get("flood", {})
                quiet = _get(target, "echo_quiet", "round_trips", "p50")
                flood_rows.append(
                    [
                        target["label"],
                        who,
                        _ms(quiet),
                        _ms(trips["p50"]),
                        _ms(trips["p99"]),
                        f"{echo.get('lost', 0)}/{echo.get('tried', 0)}",
                        _n(counts.get("opened", 0) - counts.get("sent_away", 0)),
                        _n(counts.get("sent_away")),
                        _n(counts.get("refused")),
                    ]
                )
        for reading in (target.get("churn") or {}).get("rounds", []):
            kinds = sorted(reading["key_kinds"].items(), key=lambda item: -item[1])[:3]
            churn_rows.append(
                [
                    target["label"],
                    str(reading["round"]),
                    _n(reading["sockets"]),
                    _n(reading["keys"]),
                    ", ".join(f"{kind} {count:,}" for kind, count in kinds) or "—",
                    ", ".join(f"{kind} {mib:.1f}" for kind, mib in reading["rss_mib"].items()),
                ]
            )
    out = []
    if flood_rows:
        out += [
            "",
            "### One client reconnecting in a loop, beside a bystander's echo",
            "",
            f"The echo's round trips (a bystander's sockets, other logins) while one client, in {RECONNECT_LOOPS} "
            f"loops at once, opens a socket, joins a room, writes {RECONNECT_FRAMES} chat sends and drops it, "
            "over and over, trying a refused handshake again at once (logged in: a login of its own on the site, "
            "an anonymous chat socket on the peer); or, anonymous, opens the liveblog's stream and drops it (the "
            "chat on the peer). The site runs this phase with its production client budgets.",
            "",
            _table(
                ["", "flooding client", "quiet p50", "p50", "p99", "lost", "served", "sent away", "refused"],
                flood_rows,
            ),
        ]
    if churn_rows:
        out += [
            "",
            "### Churn: what sockets that come and go leave behind",
            "",
            "Each round, several users each open a chat socket, join a room, send a message and drop it, over and "
            "over; then the servers settle and the Redis keys and each process's memory are read (round 0: before "
            "any churn).",
            "",
            _table(["", "round", "sockets opened", "Redis keys", "most keys", "memory per process (MiB)"], churn_rows),
        ]
    return out


def _per_delivery_us(entry: dict | None) -> str:
    if not entry or not entry.get("delivered"):
        return "—"
    return f"{1e6 * entry['cpu_s'] / entry['delivered']:.0f}"


def _fanout_cost(entry: dict, target: dict) -> str:
    messages = entry["messages"]
    daphne_ms = 1000 * entry["cpu_by_kind_s"].get("daphne", 0) / messages / 2
    client_ms = 1000 * entry["client_cpu_s"] / messages
    return (
        f"a message costs each daphne about {daphne_ms:.0f} ms of CPU to write to its {entry['opened'] // 2:,} "
        f"sockets (the two in parallel) and the client about {client_ms:.0f} ms to read them all; the rest of "
        f"the {entry['to_last_socket']['p99']:.0f} ms is waiting for one of the 2 cores, shared with the worker, "
        f"Redis and whatever else runs (load average {_load_range(target)} during the run)"
    )


def _echo_cost(echo: dict, cpu: dict, name: str, target: dict) -> str:
    if echo.get("lost"):
        return f"{echo['lost']} round trips lost"
    total = sum(cpu.values())
    parts = ", ".join(f"{kind} {value:.1f} ms" for kind, value in cpu.items())
    if name == "p50":
        return (
            f"the servers spend {total:.1f} ms of CPU per round trip ({parts}), more than the whole budget: "
            "for each frame the worker reads and writes the socket's channel session (in Redis), loads the "
            "user and the room from the database, and commits the message row (an fsync on SQLite) before the "
            "group send; the message goes through Redis on its way in and on its way out"
        )
    p50, p99 = echo["round_trips"]["p50"], echo["round_trips"]["p99"]
    return (
        f"the p50 alone is {p50:.1f} ms (the CPU above), and a round trip that waits behind another process for "
        f"one of the 2 cores (load average {_load_range(target)} during the run) takes {p99 / p50:.1f}× that"
    )


# Plots


def _plain_log_axis(axis, which: str, ticks: list[float] | None = None) -> None:
    """A log axis labelled with plain numbers (10, 100, 1,000) rather than powers of ten."""
    target = axis.xaxis if which == "x" else axis.yaxis
    (axis.set_xscale if which == "x" else axis.set_yscale)("log")
    if ticks:
        target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def _save(figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def plot_fanout_latency(results: dict, folder: Path) -> str:
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for key, target in _targets(results):
        entries = [entry for entry in target.get("fanout", []) if _fully_measured(entry)]
        if not entries:
            continue
        sizes = [entry["size"] for entry in entries]
        color = COLORS[key]
        axis.plot(
            sizes,
            [entry["to_last_socket"]["p50"] for entry in entries],
            "o-",
            color=color,
            label=f"{target['label']} p50",
        )
        axis.plot(
            sizes,
            [entry["to_last_socket"]["p99"] for entry in entries],
            "s--",
            color=color,
            label=f"{target['label']} p99",
        )
    sizes = sorted(results["config"]["sizes"])
    axis.axhline(FANOUT_P99_MS, color="grey", linewidth=0.8, linestyle=":")
    axis.text(sizes[0], FANOUT_P99_MS * 1.05, f"p99 target ({FANOUT_P99_MS:.0f} ms)", color="grey", fontsize=8)
    _plain_log_axis(axis, "x", sizes)
    _plain_log_axis(axis, "y", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000])
    axis.set_xlabel("sockets in the room (over 2 daphnes)")
    axis.set_ylabel("send → last socket has it (ms)")
    axis.set_title("Fan-out latency (sizes where every socket got every message)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, folder / "fanout_latency.png")


def _cdf(axis, quantiles: list[float], fraction: float, **style) -> None:
    """Draws a distribution given as evenly spaced quantiles, scaled to the share that arrived."""
    if not quantiles:
        return
    steps = len(quantiles) - 1
    axis.plot(quantiles, [100 * fraction * step / steps for step in range(steps + 1)], **style)


def plot_copies(results: dict, folder: Path, *, what: str) -> str | None:
    """Share of sockets that have the message, against the time since it was sent (largest fan-out or liveblog)."""
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for key, target in _targets(results):
        if what == "fanout":
            sizes = [entry["size"] for entry in target.get("fanout", [])]
            entry = _fanout(target, max(sizes)) if sizes else None
        else:
            entry = target.get("liveblog")
        if not entry or not entry.get("per_copy_quantiles_ms"):
            continue
        fraction = entry["delivered_pct"] / 100
        _cdf(
            axis,
            entry["per_copy_quantiles_ms"],
            fraction,
            color=COLORS[key],
            label=f"{target['label']} ({_pct(entry['delivered_pct'])} delivered)",
        )
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    _plain_log_axis(axis, "x", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000])
    axis.set_ylim(0, 102)
    axis.set_ylabel("copies delivered (% of sockets × messages)")
    if what == "fanout":
        size = max(results["config"]["sizes"])
        axis.set_xlabel("time since the send (ms)")
        axis.set_title(f"Fan-out to {size:,} sockets: when each copy arrived")
        name = "fanout_copies.png"
    else:
        axis.set_xlabel("time since post_create was called (ms)")
        axis.set_title(f"Liveblog, {results['config']['liveblog_streams']:,} streams: when each copy arrived")
        name = "liveblog_copies.png"
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return _save(figure, folder / name)


def plot_echo(results: dict, folder: Path) -> str | None:
    figure, axis = plt.subplots(figsize=(7.5, 4.0))
    drawn = False
    for key, target in _targets(results):
        samples = sorted(_get(target, "echo", "samples_ms", default=[]) or [])
        if not samples:
            continue
        axis.plot(
            samples,
            [100 * (index + 1) / len(samples) for index in range(len(samples))],
            color=COLORS[key],
            label=target["label"],
        )
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    for limit, label in ((ECHO_P50_MS, "p50 target"), (ECHO_P99_MS, "p99 target")):
        axis.axvline(limit, color="grey", linewidth=0.8, linestyle=":")
        axis.text(limit, 2, f" {label}", color="grey", fontsize=8, rotation=90)
    _plain_log_axis(axis, "x", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    axis.set_xlabel("round trip (ms)")
    axis.set_ylabel("round trips (%)")
    axis.set_title("Echo: send to a room of one, until the message comes back")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, folder / "echo.png")


def plot_cpu_memory(results: dict, folder: Path) -> str | None:
    targets = _targets(results)
    sizes = sorted(results["config"]["sizes"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(len(targets), 1)
    for index, (key, target) in enumerate(targets):
        values = [_get(_fanout(target, size), "deliveries_per_cpu_s", default=0) or 0 for size in sizes]
        positions = [position + (index - (len(targets) - 1) / 2) * width for position in range(len(sizes))]
        left.bar(positions, values, width, color=COLORS[key], label=target["label"])
    left.set_xticks(range(len(sizes)), [f"{size:,}" for size in sizes])
    left.set_xlabel("sockets in the room")
    left.set_ylabel("deliveries per server CPU-second")
    left.set_title("Fan-out efficiency (higher is better)")
    left.grid(True, axis="y", alpha=0.3)
    left.legend(fontsize=8)
    labels, values, colors = [], [], []
    for key, target in targets:
        memory = _memory(target)
        if memory:
            labels.append(target["label"].replace(" (", "\n("))
            values.append(memory["bytes_per_socket"] / 1024)
            colors.append(COLORS[key])
    right.bar(range(len(values)), values, color=colors)
    right.set_xticks(range(len(values)), labels, fontsize=7)
    right.set_ylabel("daphne RSS per idle socket (KiB)")
    right.set_title("Memory per idle connection")
    right.grid(True, axis="y", alpha=0.3)
    return _save(figure, folder / "cpu_memory.png")


def plot_http(results: dict, folder: Path) -> str | None:
    rows = []
    for key, target in _targets(results):
        for server in ("gunicorn", "daphne"):
            http = _get(target, "http", server)
            if http:
                rows.append((f"{server}\n{target['label']}".replace(" (", "\n("), http, COLORS[key]))
    if not rows:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    positions = range(len(rows))
    left.bar(positions, [http["requests_per_s"] or 0 for _, http, _ in rows], color=[color for *_, color in rows])
    left.set_ylabel("requests per second")
    left.set_title(f"GET {rows[0][1]['path']}, {rows[0][1]['clients']} clients")
    right.bar(positions, [http["latency"]["p99"] or 0 for _, http, _ in rows], color=[color for *_, color in rows])
    right.set_ylabel("p99 latency (ms)")
    right.set_title("p99 latency")
    for axis in (left, right):
        axis.set_xticks(positions, [label for label, *_ in rows], fontsize=7)
        axis.grid(True, axis="y", alpha=0.3)
    return _save(figure, folder / "http.png")


def _memory(target: dict) -> dict | None:
    return next((entry["memory"] for entry in target.get("fanout", []) if "memory" in entry), None)


# The markdown


def markdown(results: dict, images: dict[str, str | None], folder_name: str) -> str:
    config = results["config"]
    machine = results["machine"]
    versions = results["versions"]
    sizes = sorted(config["sizes"])
    targets = _targets(results)
    minutes = results["duration_s"] / 60

    def image(name: str, alt: str) -> str:
        file = images.get(name)
        return f"![{alt}]({folder_name}/{file})" if file else f"_({alt}: no data to plot.)_"

    out = ["# Benchmarks", ""]
    out.append(
        f"Written by `make bench` on {results['started_utc']} at revision `{results.get('revision', '?')}`; "
        f"the run took {minutes:.1f} minutes. "
        f"The raw figures are in [{folder_name}/results.json]({folder_name}/results.json), the plots beside them."
    )
    if results.get("quick"):
        out += ["", "**This is a `--quick` run: small sizes, for development only.**"]
    out += [
        "",
        "The machine is a 2-core VM that the clients share with the servers, so latencies, and their",
        "tails most of all, move with whatever else runs (the load averages per phase are in the results",
        "and the verdicts below). CPU time per delivery is the steadier figure, though it moves with the",
        "VM's speed too (the speed gauge under The machine, taken before each phase).",
        "",
        "## Targets (the project's layer)",
        "",
    ]
    rows = evaluate(results)
    if rows:
        out.append(_table(["target", "measured", "verdict"], rows))
    else:
        out.append("_The project's layer was not run._")

    out += ["", "## How to run it", ""]
    out += [
        "```sh",
        "make bench                           # what wrote this page",
        ".venv/bin/python -m bench.run --quick  # small sizes, writes var/bench-quick/ instead",
        "```",
        "",
        f"`make bench` installs `requirements/bench.txt` into `.venv`, creates `bench/.venv-peer` from "
        "`bench/requirements-peer.txt` and `bench/.stock-site` (the stock layer's site, see What runs), then "
        f"runs `.venv/bin/python -m bench.run`. This run: `{results['command']}`. "
        "It starts every process itself on loopback ports (its own `redis-server` each time, never the "
        "machine's Redis or PostgreSQL), bounds every loop in count and time, and leaves no process behind. "
        "It stops itself after 60 minutes (`--time-limit`), skipping a phase that would not fit (listed "
        "under Errors); on a fresh clone the installs take two to three minutes before that.",
        "",
        "## The machine",
        "",
        _table(
            ["", ""],
            [
                ["CPUs (nproc)", machine["nproc"]],
                ["CPU model", machine["cpu_model"]],
                ["memory", f"{machine['memory_gib']} GiB"],
                ["kernel", machine["kernel"]],
                ["OS", machine.get("os", "")],
                ["temporary files (SQLite database)", machine.get("tmp_filesystem", "")],
                ["open-file limit", results["process"]["nofile_soft"]],
                [
                    "speed gauge before each phase (a fixed Python loop; lower is faster, and CPU per "
                    "message moves with it)",
                    _gauge_range(results),
                ],
            ],
        ),
        "",
        "## Versions",
        "",
    ]
    site = versions["site"]
    peer = versions.get("peer", {})
    stock = versions.get("stock", {})

    def msgpack(packages: dict) -> str:
        installed = packages.get("msgpack", "not installed")
        return installed if installed != "not installed" else f"msgpack-python {packages.get('msgpack-python', '')}"

    version_rows = [
        ["Python", site["Python"], stock.get("Python", ""), peer.get("Python", "")],
        ["Django", site["Django"], stock.get("Django", ""), peer.get("Django", "")],
        ["channels", site["channels"], stock.get("channels", ""), peer.get("channels", "")],
        ["daphne", site["daphne"], stock.get("daphne", ""), peer.get("daphne", "")],
        [
            "channel layer",
            f"asgi_redis {site['asgi_redis']} (+ fanout_layer)",
            f"asgi_redis {stock.get('asgi_redis', '')}",
            f"channels-redis {peer.get('channels-redis', '')}",
        ],
        ["redis-py", site["redis"], stock.get("redis", ""), peer.get("redis", "")],
        ["msgpack", msgpack(site), msgpack(stock) if stock else "", peer.get("msgpack", "")],
        ["Twisted", site["Twisted"], stock.get("Twisted", ""), peer.get("Twisted", "")],
        ["autobahn", site["autobahn"], stock.get("autobahn", ""), peer.get("autobahn", "")],
        ["Redis server", versions["redis_server"], versions["redis_server"], versions["redis_server"]],
        ["gunicorn", site["gunicorn"], stock.get("gunicorn", ""), ""],
        ["site commit", "this one", stock.get("commit", ""), ""],
        [
            "benchmark client",
            f"websockets {site['websockets']}",
            f"websockets {site['websockets']}",
            f"websockets {site['websockets']}",
        ],
    ]
    out.append(_table(["", "site, project layer", "earlier site (stock, before)", "Channels 4 peer"], version_rows))

    out += ["", "## What runs", ""]
    out += [
        "* **The site, project layer**: `CHANNEL_LAYER_BACKEND=fanout_layer.FanoutRedisChannelLayer` with the "
        "settings' defaults (capacity 1,000, `process_local_capacity` 100,000, `receive_batch_size` 100, expiry 60 s).",
        "* **The site, stock layer**: `CHANNEL_LAYER_BACKEND=asgi_redis.RedisChannelLayer` with "
        "`CHANNEL_LAYER_CAPACITY=100`, asgi_redis's own default (`project/settings/base.py` would give it 1,000); "
        "expiry 60 s and group expiry 86,400 s are asgi_redis's defaults too. asgi_redis 1.4.3 runs only on "
        "redis-py 2.10 and msgpack-python 0.5, which the runtime set left while the kit moved to redis-py 8, so "
        "this layer runs the site as of its last commit on them (the `site commit` above, unpacked into "
        "`bench/.stock-site` with its own pins by `make bench`): the same models, frames and pages; what "
        "differs on the site's side is the later issue-19 work (a cheaper liveblog reconnect and chat join, "
        "JSON channel sessions, the handshake lane).",
        "* **The site, project layer on redis-py 2.10.6 (before issue 20)**: that same earlier site with its own "
        "fan-out layer, on redis 2.10.6 and msgpack-python 0.5.6, in the echo and fan-out phases only: the layer's "
        "CPU per echo and per delivery before and after the move to redis-py 8 and msgpack 1, in one run.",
        "* Both: one `redis-server`, two daphne 1.4.2 processes (each on its own port; sockets alternate "
        "between them), two `manage.py runworker`, gunicorn with two sync workers, `project.settings.test` "
        "(the production settings but for fast password hashing), and SQLite in a temporary directory "
        f"({machine.get('tmp_filesystem', '?')}), as `tools/site_stack.py` starts them.",
        "* **The Channels 4 peer** (`bench/peer/`, from `bench/.venv-peer`): a minimal `AsyncJsonWebsocketConsumer` "
        "that does `group_add` on join and `group_send` on send, with the same frames, in two daphne 4 processes "
        "on channels_redis with its defaults. It has no login, database, session, presence or history, and no "
        "worker hop: per message it does less than the site.",
        f"* Each target runs in phases, each on freshly started processes: (1) echo, fan-out to "
        f"{', '.join(f'{size:,}' for size in sizes[:-1])} sockets and the plain pages; (2) fan-out to {sizes[-1]:,} "
        "sockets, memory and the join burst; (3) the liveblog; (4) the sustained fan-out; (5) the crowd of "
        f"{config.get('crowd_sockets', 0):,} sockets. A lossy layer's leftovers (lost disconnects leave dead "
        "members in groups) would otherwise weigh on the next measurement.",
        f"* The clients: one asyncio process (this one) holds every socket, using websockets' sans-I/O protocol "
        f"on plain asyncio transports. {config['users']} users log in once; their session cookies are shared "
        "by many sockets (each socket is its own member of the room's group). Sockets open "
        f"{config['connect_concurrency']} at a time, each joining the room before the next starts.",
        f"* A fan-out message goes out only when the previous one reached every socket, or when none "
        f"arrived for {config['quiet']:.0f} s (then the missing copies count as lost), {config['gap'] * 1000:.0f} ms "
        "after. One warm-up message per room is not counted. Times are `time.time()` in one process: from just "
        "before the sender's frame is written to when the last socket's bytes arrive. p99 of "
        f"{config['messages']} messages is close to their maximum.",
    ]

    out += ["", "## Fan-out", ""]
    out.append(
        f"One room, {', '.join(f'{size:,}' for size in sizes)} sockets over the two daphnes, {config['messages']} "
        "messages each, sent by a few members in turn (the site lets a socket send 10 messages in 10 s). "
        "*Delivered*: copies received out of sockets × messages. *To the last socket*: from the send until "
        "the last socket had it, over the messages every socket got. *Per copy*: from the send to each "
        "copy's arrival. *Open*: sockets whose handshake succeeded; a join left unanswered for 30 s is noted "
        "(such a socket still counts as a recipient)."
    )
    out.append("")
    rows = []
    for _, target in targets:
        for size in sizes:
            entry = _fanout(target, size)
            if not entry:
                rows.append([target["label"], f"{size:,}", "not measured"] + [""] * 6)
                continue
            rows.append(
                [
                    target["label"],
                    f"{size:,}",
                    _opened_cell(entry),
                    *_delivery_cells(entry),
                    _ms(_get(entry, "per_copy", "p50")),
                    _ms(_get(entry, "per_copy", "p99")),
                ]
            )
    out.append(
        _table(
            [
                "",
                "sockets",
                "open",
                *DELIVERY_HEADERS,
                "per copy p50",
                "per copy p99",
            ],
            rows,
        )
    )
    out += [
        "",
        image("fanout_latency", "fan-out latency by room size"),
        "",
        image("fanout_copies", "when each copy of a fan-out arrived"),
    ]

    out += ["", "## The stock layer's losses", ""]
    stock = results["targets"].get("stock")
    if stock:
        out += _stock_losses(stock, sizes)
    else:
        out.append("_The stock layer was not run._")

    out += ["", "## Echo", ""]
    out.append(
        f"{config['echo_round_trips']} round trips (20 more first to warm up), one at a time, 10 ms apart: a "
        "socket alone in its room sends a message and waits for it to come back. The round trips take turns "
        "over several such sockets on the first daphne (the site lets a socket send 10 messages in 10 s); "
        "a socket whose join went unanswered is replaced and counted under *joins unanswered*. The path "
        "is daphne → Redis → worker (`chat.consumers`, the database) → group send → Redis → daphne, for "
        "the site; daphne → consumer → Redis → the same daphne for the peer. "
        "*Server CPU* is the servers' CPU time per round trip."
    )
    out.append("")
    rows = []
    for _, target in targets:
        echo = target.get("echo")
        if not echo or "round_trips" not in echo:
            rows.append([target["label"], "not measured", "", "", "", "", ""])
            continue
        trips = echo["round_trips"]
        cpu = echo.get("cpu_ms_per_round_trip", {})
        rows.append(
            [
                target["label"],
                _ms(trips["p50"]),
                _ms(trips["p90"]),
                _ms(trips["p99"]),
                str(echo["lost"]),
                str(echo.get("join_failures", 0)),
                ", ".join(f"{kind} {value:.2f} ms" for kind, value in cpu.items()),
            ]
        )
    out.append(_table(["", "p50", "p90", "p99", "lost", "joins unanswered", "server CPU per round trip"], rows))
    out += ["", image("echo", "echo round trips")]
    flood_rows = []
    for _, target in targets:
        flooded = target.get("echo_flooded")
        if flooded and "round_trips" in flooded:
            trips, counts, alone = flooded["round_trips"], flooded.get("flood", {}), target["echo"]["round_trips"]
            flood_rows.append(
                [
                    target["label"],
                    _ms(trips["p50"]),
                    _ms(trips["p99"]),
                    f"{trips['p50'] / alone['p50']:.1f}×" if trips["p50"] and alone["p50"] else "—",
                    str(flooded["lost"]),
                    f"{counts.get('frames', 0):,}",
                    str(counts.get("sockets", 0)),
                ]
            )
    if flood_rows:
        out += [
            "",
            "### Echo beside a flooding socket",
            "",
            f"The same round trips while another logged-in socket on the same daphne writes up to "
            f"{FLOOD_FRAMES_PER_S:,} frames a second, half chat sends and half invalid JSON, and opens a new "
            f"socket {FLOOD_RECONNECT_S:g} s after the site closes one (its frame budget: an error frame, then 4429). "
            "daphne drops "
            "frames over the budget before Redis, so they never reach a worker. Not run for the peer, which "
            "has no frame budget.",
            "",
            _table(
                ["", "p50", "p99", "p50 against alone", "lost", "flood frames written", "flood sockets"], flood_rows
            ),
        ]

    burst_rows = []
    for _, target in targets:
        burst = target.get("join_burst")
        if burst and burst.get("opened"):
            cpu = burst.get("cpu_ms_per_join", {})
            burst_rows.append(
                [
                    target["label"],
                    f"{burst.get('answered', 0):,}/{burst['opened']:,}",
                    f"{burst.get('to_median_reply_s')} s",
                    f"{burst.get('to_last_reply_s')} s",
                    _count_cell(burst.get("count")),
                    str(burst.get("joins_per_s")),
                    ", ".join(f"{kind} {value:.2f} ms" for kind, value in cpu.items()),
                ]
            )
    if burst_rows:
        out += [
            "",
            "## Join burst",
            "",
            "Sockets open over both daphnes and idle; then each sends a join of the same room at once, as at "
            "the start of a live event. The time runs from the first join sent to each join reply. *Count "
            "right everywhere*: until every socket showed the room's final member count, as a page shows it "
            "(from the join reply and the presence frames, the newest seq winning); the peer has no count.",
            "",
            _table(
                [
                    "",
                    "answered",
                    "median reply",
                    "last reply",
                    "count right everywhere",
                    "joins a second",
                    "server CPU per join",
                ],
                burst_rows,
            ),
        ]

    out += _sustained_section(results, targets)
    out += _crowd_section(results, targets)
    out += _clients_section(targets)
    out += _restart_section(targets)

    out += ["", "## Liveblog", ""]
    out.append(
        f"{config['liveblog_streams']:,} streams on `/liveblog/bench/stream/` over the two daphnes; a separate "
        f"process with the stack's settings calls `liveblog.services.post_create` {config['liveblog_posts']} times "
        "(one warm-up first), each when the previous post reached every stream. The time runs from just before "
        "`post_create` until the last stream has the post; *post_create* is how long the call itself took "
        "(the row, the commit, and the group send that the commit triggers)."
    )
    out.append("")
    rows = []
    for _, target in targets:
        live = target.get("liveblog")
        if target.get("label") == results["targets"].get("peer", {}).get("label"):
            continue
        if not live or "delivered_pct" not in live:
            rows.append([target["label"], "not measured", "", "", "", "", ""])
            continue
        rows.append(
            [
                target["label"],
                f"{live['opened']:,}",
                _pct(live["delivered_pct"]),
                f"{live['complete_posts']}/{live['posts']}",
                _ms(_get(live, "to_last_stream", "p50")),
                _ms(_get(live, "to_last_stream", "p99")),
                f"{_ms(_get(live, 'post_create', 'p50'))} / {_ms(_get(live, 'post_create', 'p99'))}",
            ]
        )
    out.append(
        _table(
            ["", "streams", "delivered", "posts everywhere", "to last p50", "to last p99", "post_create p50 / p99"],
            rows,
        )
    )
    out += ["", image("liveblog_copies", "when each copy of a liveblog post arrived")]

    out += ["", "## Plain pages", ""]
    http_rows = []
    for _, target in targets:
        for server in ("gunicorn", "daphne"):
            http = _get(target, "http", server)
            if not http:
                continue
            via = "gunicorn (2 sync workers)" if server == "gunicorn" else "daphne ×2 → Redis → runworker ×2"
            http_rows.append(
                [
                    target["label"],
                    via,
                    _n(http["requests_per_s"]),
                    _ms(http["latency"]["p50"]),
                    _ms(http["latency"]["p99"]),
                    _n(http["ok"]),
                    _n(http["errors"]),
                ]
            )
    if http_rows:
        first = next(_get(target, "http", "gunicorn") for _, target in targets if _get(target, "http", "gunicorn"))
        out.append(
            f"`GET {first['path']}` (a liveblog with 20 posts) from {first['clients']} client processes, each one "
            f"request at a time on a kept-open connection where the server allows, for {config['http_seconds']:.0f} s "
            f"(at most {config['http_max_requests']:,} requests each). The clients run on the same 2 cores. "
            "gunicorn does not use the channel layer; it is measured in each target's run, which shows how much "
            "the figures move from run to run."
        )
        out.append("")
        out.append(_table(["", "served by", "requests/s", "p50", "p99", "requests", "errors"], http_rows))
        out += ["", image("http", "plain pages")]
    else:
        out.append("_Not measured._")

    out += ["", "## CPU and memory", ""]
    out.append(
        "*Server CPU*: user + system CPU time (psutil) of the daphne, worker and Redis processes (daphne and "
        "Redis for the peer), from after the warm-up message until the servers were idle again after the last one, "
        "divided by the copies delivered. *Client CPU* is this process's, for comparison. *Memory per idle "
        "connection*: the daphnes' RSS with the largest room's sockets open and joined, minus their RSS before the "
        "first socket of that phase, divided by the sockets."
    )
    out.append("")
    rows = []
    for _, target in targets:
        for size in sizes:
            entry = _fanout(target, size)
            if not entry or "cpu_s" not in entry:
                continue
            kinds = ", ".join(f"{kind} {value:.2f}" for kind, value in entry["cpu_by_kind_s"].items())
            rows.append(
                [
                    target["label"],
                    f"{size:,}",
                    _n(entry["delivered"]),
                    f"{entry['cpu_s']:.2f} s ({kinds})",
                    f"{entry['client_cpu_s']:.2f} s",
                    _ms(entry["cpu_ms_per_1000_deliveries"]),
                    _n(entry["deliveries_per_cpu_s"]),
                ]
            )
    out.append(
        _table(
            [
                "",
                "sockets",
                "deliveries",
                "server CPU",
                "client CPU",
                "server CPU per 1,000 deliveries",
                "deliveries per CPU-second",
            ],
            rows,
        )
    )
    out.append("")
    rows = []
    for _, target in targets:
        memory = _memory(target)
        if memory:
            rows.append(
                [
                    target["label"],
                    _n(memory["idle_sockets"]),
                    f"{memory['daphne_rss_before_bytes'] / 2**20:,.1f} MiB",
                    f"{memory['daphne_rss_after_bytes'] / 2**20:,.1f} MiB",
                    _kib(memory["bytes_per_socket"]),
                ]
            )
    out.append(
        _table(["", "idle sockets", "daphne RSS before (both)", "with the sockets", "per idle connection"], rows)
    )
    out += ["", image("cpu_memory", "deliveries per CPU-second and memory per idle connection")]

    errors = [(target["label"], f"`{error}`") for _, target in targets for error in target.get("errors", [])]
    errors += [
        (target["label"], f"phase {name} skipped: too little of the time limit was left")
        for _, target in targets
        for name in target.get("skipped", [])
    ]
    if results.get("stopped"):
        errors.append(("the run", results["stopped"]))
    if errors:
        out += ["", "## Errors", ""]
        out += [f"* {label}: {error}" for label, error in errors]
    out.append("")
    return "\n".join(out)


def _sustained_section(results: dict, targets: list[tuple[str, dict]]) -> list[str]:
    config = results["config"]
    rows = []
    for _, target in targets:
        sus = target.get("sustained")
        if not sus or not sus.get("messages"):
            if sus is not None:
                rows.append([target["label"], "not measured"] + [""] * 9)
            continue
        rows.append(
            [
                target["label"],
                _opened_cell(sus),
                *_delivery_cells(sus),
                _n(sus["backlog_at_last_send"]),
                _ms(1000 * sus["drain_after_last_send_s"]),
                _n(sus["out_of_order"]),
                _n(sus["deliveries_per_cpu_s"]),
                _ms(_get(sus, "send_lateness", "p99")),
            ]
        )
    if not rows:
        return []
    return [
        "",
        "## Sustained fan-out",
        "",
        f"{config['sustained_sockets']:,} sockets in one room over the two daphnes; members send "
        f"{config['sustained_rate']:g} messages a second to it for {config['sustained_seconds']:g} s "
        f"({config['sustained_rate'] * config['sustained_sockets']:,.0f} deliveries a second), each at its time "
        "whatever has arrived (open loop). They take turns among "
        f"{config['sustained_senders']} members, as the site lets one socket send 10 messages in 10 s. "
        "*Backlog*: copies of the earlier messages not yet at their sockets when the last message went out; "
        "*drain*: from the last send until the last copy arrived. *Out of order*: copies that reached a "
        "socket after a later message. *Late sends*: how far behind its clock the client sent (p99), its own "
        "CPU being part of the load.",
        "",
        _table(
            [
                "",
                "open",
                *DELIVERY_HEADERS,
                "backlog",
                "drain",
                "out of order",
                "deliveries per CPU-second",
                "late sends p99",
            ],
            rows,
        ),
    ]


def _count_cell(count: dict | None) -> str:
    if not count or count.get("final") is None:
        return "—"
    if count.get("to_all_right_s") is None:
        return f"never: {count['showing_final']:,} sockets showed {count['final']}"
    return f"{count['to_all_right_s']} s ({count['final']} people)"


# The columns every fan-out table has, and their cells (_delivery_cells).
DELIVERY_HEADERS = ["delivered", "messages everywhere", "to last p50", "to last p99"]


def _delivery_cells(entry: dict) -> list[str]:
    """A fan-out that stopped early (no socket opened) lacks the figures: shown as none."""
    return [
        _pct(entry.get("delivered_pct")),
        f"{entry.get('complete_messages', 0)}/{entry.get('messages', 0)}",
        _ms(_get(entry, "to_last_socket", "p50")),
        _ms(_get(entry, "to_last_socket", "p99")),
    ]


def _opened_cell(entry: dict) -> str:
    opened = f"{entry['opened']:,}"
    if entry.get("open_failures"):
        opened += f" ({entry['open_failures']} failed)"
    if entry.get("join_timeouts"):
        opened += f" ({entry['join_timeouts']} joins unanswered)"
    if entry.get("not_tried"):
        opened += f" ({entry['not_tried']:,} not tried in time)"
    closed = entry["opened"] - entry.get("open_at_end", entry["opened"])
    if closed:
        opened += f" ({closed:,} closed by the server before the end)"
    return opened


def _crowd_section(results: dict, targets: list[tuple[str, dict]]) -> list[str]:
    config = results["config"]
    rows = []
    for _, target in targets:
        crowd = target.get("crowd")
        if not crowd:
            continue
        if not crowd.get("messages"):
            cell = _opened_cell(crowd) if "opened" in crowd else "not measured"
            if "open_after_warm_up" in crowd:
                cell += f"; {crowd['open_after_warm_up']:,} still open after the warm-up message, none to send"
            rows.append([target["label"], cell] + [""] * 7)
            continue
        kinds = ", ".join(f"{kind} {value:.2f}" for kind, value in crowd["cpu_by_kind_s"].items())
        rows.append(
            [
                target["label"],
                f"{_opened_cell(crowd)} in {crowd['open_seconds']:.0f} s",
                *_delivery_cells(crowd),
                _kib(_get(crowd, "memory", "bytes_per_socket")),
                _n(crowd["deliveries_per_cpu_s"]),
                f"{crowd['cpu_s']:.2f} s ({kinds})",
            ]
        )
    if not rows:
        return []
    return [
        "",
        f"## {config['crowd_sockets']:,} sockets",
        "",
        f"{config['crowd_sockets']:,} sockets open over the two daphnes and join one room (no socket is tried "
        f"after {config['crowd_open_limit']:.0f} s of opening); then {config['crowd_messages']} messages go to all "
        "of them, each when the one before reached every socket, as in the fan-out above. *Per idle socket*: "
        "the daphnes' RSS with every socket open and joined, less their RSS before the first, divided by the "
        "sockets.",
        "",
        _table(
            [
                "",
                "open",
                *DELIVERY_HEADERS,
                "per idle socket",
                "deliveries per CPU-second",
                "server CPU (s)",
            ],
            rows,
        ),
    ]


def _stock_losses(stock: dict, sizes: list[int]) -> list[str]:
    lines = []
    lossy = []
    for size in sizes:
        entry = _fanout(stock, size)
        if entry and entry.get("delivered_pct") is not None and entry["delivered_pct"] < 100:
            lossy.append(entry)
    live = stock.get("liveblog")
    if not lossy and not (live and live.get("delivered_pct", 100) < 100):
        return ["The stock layer delivered every copy at every size in this run."]
    whole = [entry["size"] for entry in stock.get("fanout", []) if entry.get("delivered_pct") == 100]
    if whole:
        lines.append(f"* At {' and '.join(f'{size:,}' for size in whole)} sockets every copy arrived.")
    for entry in lossy:
        lost = entry["expected"] - entry["delivered"]
        lines.append(
            f"* **{entry['size']:,} sockets**: {lost:,} of {entry['expected']:,} copies lost "
            f"({100 - entry['delivered_pct']:.1f}%); {entry['complete_messages']} of {entry['messages']} messages "
            f"reached every socket. The copies that did arrive took p50 {_ms(entry['per_copy']['p50'])}, "
            f"p99 {_ms(entry['per_copy']['p99'])} from the send."
        )
    if live and live.get("delivered_pct", 100) < 100:
        lost = live["expected"] - live["delivered"]
        lines.append(
            f"* **Liveblog, {live['opened']:,} streams**: {lost:,} of {live['expected']:,} copies lost "
            f"({100 - live['delivered_pct']:.1f}%); `post_create` took p50 {_ms(live['post_create']['p50'])} "
            "(asgi_redis sends a group message to its members one by one)."
        )
    lines += [
        "",
        "Why: every socket of one daphne shares that daphne's reply channel (`daphne.response.<id>!`), and "
        "asgi_redis caps a channel at `capacity` (100) messages. A group message to 500 sockets on one daphne "
        "puts 500 messages into that one channel; sends past the first hundred not yet read fail with "
        "`ChannelFull`, which `send_group` drops silently. The same cap applies to the `websocket.connect` "
        "and `websocket.disconnect` channels, so bursts of handshakes or closes lose messages as well. The "
        "project's layer gives process-local channels their own capacity (10,000), stores a group message's "
        "body once with a small entry per member, all in one round trip, and counts and logs any copy it has "
        "to leave out.",
    ]
    largest = _fanout(stock, sizes[-1])
    if largest and largest.get("delivered"):
        daphne_ms = 1000 * largest["cpu_by_kind_s"].get("daphne", 0) / largest["delivered"]
        lines += [
            "",
            f"The stock layer is also slow where it does deliver: its daphnes spent {daphne_ms:.1f} ms of CPU per "
            f"copy delivered to {largest['size']:,} sockets. asgi_redis's `receive_twisted`, daphne's receive "
            "path, opens a new Redis connection for every message it takes and closes it after, where the "
            "project's layer keeps one open and takes up to 100 messages per round trip.",
        ]
    return lines


def write(out: Path, results: dict) -> None:
    folder = out.parent / out.stem
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    images = {
        "fanout_latency": plot_fanout_latency(results, folder),
        "fanout_copies": plot_copies(results, folder, what="fanout"),
        "liveblog_copies": plot_copies(results, folder, what="liveblog"),
        "echo": plot_echo(results, folder),
        "cpu_memory": plot_cpu_memory(results, folder),
        "http": plot_http(results, folder),
    }
    out.write_text(markdown(results, images, folder.name))
