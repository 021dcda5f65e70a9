"""`python -m bench.run [--quick]`: run the benchmark and write docs/benchmarks.md.

One after the other: the site with the project's layer, the site with stock asgi_redis,
and the Channels 4 peer. Each runs its measurements in phases, every phase on freshly
started processes, so that what one leaves behind (a daphne's heap, a layer's lost
disconnects) does not weigh on the next. Everything runs on loopback ports, every loop is
bounded, and a time limit (--time-limit, 60 minutes by default) stops the run and its
processes if something hangs. docs/benchmarks.md says what is measured and how.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from tools.processes import REPO

from . import report, restart, scenarios
from .targets import (
    LAYERS,
    PEER_LABEL,
    PeerTarget,
    SiteTarget,
    peer_versions,
    redis_server_version,
    stock_site_versions,
)

SITE_PACKAGES = [
    "Django",
    "channels",
    "daphne",
    "asgi_redis",
    "asgiref",
    "redis",
    "txredisapi",
    "msgpack",
    "msgpack-python",
    "hiredis",
    "Twisted",
    "autobahn",
    "gunicorn",
    "websockets",
    "matplotlib",
]
# The site's settings read these; the benchmark sets them itself (never the machine's own
# Redis or PostgreSQL: each phase starts its own redis-server, the database is SQLite).
CLEARED_ENV_PREFIXES = ("CHANNEL_LAYER_", "DJANGO_", "DATABASE_", "REDIS_URL", "GUNICORN_", "PORT")
PAGE = "/liveblog/page/"
# A phase takes up to about seven minutes (the crowd, on the stock layer); none starts when
# less than that is left.
PHASE_RESERVE = 420.0

Say = Callable[[str], None]


class TimeLimit(BaseException):
    """The run's time limit passed (or it was asked to stop): unwinds, stopping every process."""


def _stop(signum, frame):
    raise TimeLimit(f"stopped by {signal.Signals(signum).name}")


def prepare_process() -> dict:
    """Raises the open-file limit (the servers inherit it) and clears settings from the environment."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    for name in list(os.environ):
        if name.startswith(CLEARED_ENV_PREFIXES):
            del os.environ[name]
    return {"nofile_soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def _cpu_model() -> str:
    """The CPU's model name: psutil does not report it, so from /proc/cpuinfo where there is one."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    return next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor() or "unknown",
    )


def machine() -> dict:
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        os_name = ""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 1024 / 1024 / 1024, 1),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "os": os_name,
        "tmp_filesystem": _filesystem_of(tempfile.gettempdir()),
    }


def _filesystem_of(path: str) -> str:
    best, kind = "", "unknown"
    for partition in psutil.disk_partitions(all=True):
        if path.startswith(partition.mountpoint) and len(partition.mountpoint) > len(best):
            best, kind = partition.mountpoint, partition.fstype
    return kind


def revision() -> str:
    """The commit measured, with "-dirty" when the work tree has changes beside it."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def speed_gauge() -> float:
    """Milliseconds this process takes for a fixed piece of pure-Python work (the best of five).

    The VM's speed drifts with its neighbours: the same join burst took 1.24 ms of worker CPU a
    join in one run and 2.13 ms an hour later, with the same code. Taken before each phase, this
    says how fast the machine was when each figure was measured."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for number in range(200_000):
            total += number % 7
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


def load_average() -> list[float]:
    try:
        return list(os.getloadavg())
    except OSError:
        return []


def versions(with_peer: bool, with_stock: bool = False) -> dict:
    site = {"Python": platform.python_version()}
    for name in SITE_PACKAGES:
        try:
            site[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            site[name] = "not installed"
    result = {"site": site, "redis_server": redis_server_version()}
    if with_peer:
        result["peer"] = peer_versions()
    if with_stock:
        result["stock"] = stock_site_versions(SITE_PACKAGES)
    return result


def _ms(summary: dict | None) -> str:
    if not summary or summary.get("p50") is None:
        return "p50 -, p99 -"
    return f"p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms"


def _fanout_line(result: dict) -> str:
    if "delivered_pct" not in result:
        return f"{result['size']} sockets: {result.get('opened', 0)} opened, not measured"
    return (
        f"{result['opened']}/{result['size']} sockets open in {result['open_seconds']}s, "
        f"{result['delivered_pct']}% delivered, to the last socket {_ms(result['to_last_socket'])}, "
        f"{result['deliveries_per_cpu_s']} deliveries per CPU-second"
    )


# The phases. Each gets a started target and fills `results`, the target's section.


async def phase_small(target, config: scenarios.Config, results: dict, say: Say) -> None:
    """Echo, the small fan-outs and (for the site) the plain pages."""
    await scenarios.warm_up(target, config)
    say("echo")
    results["echo"] = await scenarios.echo(target, config)
    say(f"echo round trip {_ms(results['echo'].get('round_trips'))}")
    if target.kind == "site":
        # The peer has no frame budget: a flood there measures nothing it claims.
        say("echo beside a flooding socket")
        results["echo_flooded"] = await scenarios.echo(target, config, flooder=scenarios.flood)
        say(f"echo round trip beside a flood {_ms(results['echo_flooded'].get('round_trips'))}")
    for size in sorted(config.sizes)[:-1]:
        say(f"fan-out to {size} sockets")
        fanout = await scenarios.fanout(target, size, config, measure_memory=False)
        say(_fanout_line(fanout))
        results["fanout"].append(fanout)
    if target.kind == "site":
        say(f"plain pages: GET {PAGE}")
        results["http"] = {
            "gunicorn": await scenarios.http_pages([target.stack.gunicorn_port], PAGE, config),
            "daphne": await scenarios.http_pages(target.stack.daphne_ports, PAGE, config),
        }
        say(
            f"gunicorn {results['http']['gunicorn']['requests_per_s']} req/s, "
            f"daphne {results['http']['daphne']['requests_per_s']} req/s"
        )


async def phase_large(target, config: scenarios.Config, results: dict, say: Say) -> None:
    """The largest fan-out, with the memory of its idle sockets (on daphnes that held none before)."""
    await scenarios.warm_up(target, config)
    size = max(config.sizes)
    say(f"fan-out to {size} sockets")
    fanout = await scenarios.fanout(target, size, config, measure_memory=True)
    say(_fanout_line(fanout))
    results["fanout"].append(fanout)
    say(f"join burst: {config.join_burst} sockets join one room at once")
    results["join_burst"] = burst = await scenarios.join_burst(target, config)
    say(
        f"join burst: {burst.get('answered')}/{burst['opened']} answered, the last after "
        f"{burst.get('to_last_reply_s')} s ({burst.get('joins_per_s')} joins/s)"
    )


async def phase_liveblog(target, config: scenarios.Config, results: dict, say: Say) -> None:
    await scenarios.warm_up(target, config)
    say(f"liveblog, {config.liveblog_streams} streams")
    results["liveblog"] = live = await scenarios.liveblog(target, config)
    say(f"liveblog: {live.get('delivered_pct')}% delivered, to the last stream {_ms(live.get('to_last_stream'))}")


async def phase_sustained(target, config: scenarios.Config, results: dict, say: Say) -> None:
    await scenarios.warm_up(target, config)
    say(
        f"sustained fan-out: {config.sustained_sockets} sockets, {config.sustained_rate:g} messages/s "
        f"for {config.sustained_seconds:g} s"
    )
    results["sustained"] = sus = await scenarios.sustained(target, config)
    say(
        f"sustained: {sus.get('delivered_pct')}% delivered, to the last socket {_ms(sus.get('to_last_socket'))}, "
        f"backlog {sus.get('backlog_at_last_send')} copies at the last send"
    )


async def phase_crowd(target, config: scenarios.Config, results: dict, say: Say) -> None:
    """The most sockets: open them over both daphnes, then a few messages to every one."""
    await scenarios.warm_up(target, config)
    size = config.crowd_sockets
    say(f"crowd: {size} sockets, {config.crowd_messages} messages to all")
    results["crowd"] = crowd = await scenarios.fanout(
        target,
        size,
        config,
        measure_memory=True,
        messages=config.crowd_messages,
        open_limit=config.crowd_open_limit,
        # The phase's processes stop next: waiting for 10,000 disconnects measures nothing.
        settle_after_close=False,
    )
    say(_fanout_line(crowd))


async def phase_clients(target, config: scenarios.Config, results: dict, say: Say) -> None:
    """One client's reconnect floods beside a bystander's echo, then sockets churning for rounds."""
    await scenarios.warm_up(target, config)
    bounds = {"round_trips": config.reconnect_round_trips, "seconds": config.reconnect_seconds}
    say("echo, quiet")
    results["echo_quiet"] = await scenarios.echo(target, config, **bounds)
    say(f"echo, quiet: {_ms(results['echo_quiet'].get('round_trips'))}")
    for logged_in, key in ((True, "echo_reconnect_user"), (False, "echo_reconnect_anonymous")):
        who = "a logged-in client" if logged_in else "an anonymous client"
        say(f"echo beside {who} reconnecting in a loop")
        flooder = scenarios.reconnect_flooder(logged_in=logged_in)
        results[key] = echo = await scenarios.echo(target, config, flooder=flooder, **bounds)
        counts = echo.get("flood", {})
        say(
            f"echo beside {who}: {_ms(echo.get('round_trips'))}, {echo.get('lost')} lost; of its handshakes "
            f"{counts.get('refused')} refused, {counts.get('sent_away')} sent away, of {counts.get('opened')} answered"
        )
    say(f"churn: {config.churn_rounds} rounds of {config.churn_clients} clients for {config.churn_seconds:g} s")
    results["churn"] = churn = await scenarios.churn(target, config)
    for reading in churn["rounds"]:
        say(
            f"churn round {reading['round']}: {reading['sockets']} sockets, {reading['keys']} Redis keys, "
            f"memory per process (MiB) {reading['rss_mib']}"
        )


async def phase_restart(target, config: scenarios.Config, results: dict, say: Say) -> None:
    """A rolling restart of both daphnes with a crowd open and posts and messages flowing."""
    await scenarios.warm_up(target, config)
    say(
        f"rolling restart: {config.restart_sockets} sockets ({config.restart_chat_members} chat members in "
        f"{config.restart_rooms} rooms), both daphnes restarted in turn"
    )
    run = restart.RollingRestart(
        target,
        config,
        sockets=config.restart_sockets,
        chat_members=config.restart_chat_members,
        rooms=scenarios.restart_rooms(config),
    )
    results["restart"] = figures = await run.run()
    say(
        f"rolling restart: {figures.get('back')}/{figures.get('sockets')} back, gap {_ms(figures.get('gap'))}, "
        f"{figures.get('refused_handshakes')} handshakes refused, {figures.get('missed_posts')} posts and "
        f"{figures.get('missed_messages')} messages missed, in {figures.get('window_s')} s"
    )


# A production drain for the restart phase (the site's stacks otherwise drain for 1 s).
RESTART_DRAIN_SECONDS = "20"

Phase = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Clock:
    """When the run started, and after when no phase starts any more (so that the report is written)."""

    started: float
    last_start: float

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def run_phase(target, phase: Phase, config: scenarios.Config, results: dict, clock: Clock) -> None:
    """Starts the target's processes, runs one phase against them, stops them whatever happens."""

    def say(what: str) -> None:
        print(f"[{clock.elapsed():6.1f}s] {target.label}: {what}", flush=True)

    name = phase.__name__.removeprefix("phase_")
    if time.monotonic() > clock.last_start:
        say(f"{name}: skipped, too little of the time limit is left")
        results.setdefault("skipped", []).append(name)
        return
    say(f"{name}: starting processes")
    began = time.monotonic()
    record = {"phase": name, "load_before": load_average(), "gauge_ms": speed_gauge()}
    try:
        target.start()
        asyncio.run(phase(target, config, results, say))
    except Exception as error:
        say(f"FAILED: {error!r}")
        traceback.print_exc()
        print(target.logs(), file=sys.stderr)
        results.setdefault("errors", []).append(f"{name}: {type(error).__name__}: {error}")
    finally:
        try:
            target.stop()
        except TimeLimit:
            # The limit struck while stopping: finish stopping (it strikes once), then unwind.
            target.stop()
            raise
        record.update(load_after=load_average(), seconds=round(time.monotonic() - began, 1))
        results["phases"].append(record)


PHASES = {
    "small": phase_small,
    "large": phase_large,
    "liveblog": phase_liveblog,
    "sustained": phase_sustained,
    "crowd": phase_crowd,
    "clients": phase_clients,
    "restart": phase_restart,
}


def run_site(
    key: str, config: scenarios.Config, workdir: Path, clock: Clock, results: dict, phases: tuple = tuple(PHASES)
) -> None:
    layer = LAYERS[key]
    results.update(label=layer["label"], backend=layer["backend"], env=layer["env"], fanout=[], phases=[])
    for phase in (PHASES[name] for name in phases if name in layer.get("phases", PHASES)):
        # The clients phase measures the client budgets, so it runs with the production ones.
        target = SiteTarget(
            key,
            workdir / phase.__name__,
            users=config.users,
            rooms=rooms(config),
            budgets_lifted=phase is not phase_clients,
            extra_env={"DAPHNE_DRAIN_SECONDS": RESTART_DRAIN_SECONDS} if phase is phase_restart else None,
        )
        run_phase(target, phase, config, results, clock)
        results["fanout"].sort(key=lambda entry: entry["size"])


def run_peer(
    config: scenarios.Config, workdir: Path, clock: Clock, results: dict, phases: tuple = tuple(PHASES)
) -> None:
    results.update(label=PEER_LABEL, fanout=[], phases=[])
    # The peer has no liveblog, and no catch-up to come back with after a restart.
    for phase in (PHASES[name] for name in phases if name not in ("liveblog", "restart")):
        run_phase(PeerTarget(workdir / phase.__name__), phase, config, results, clock)
        results["fanout"].sort(key=lambda entry: entry["size"])


def rooms(config: scenarios.Config) -> list[str]:
    echo = [f"echo-{index}" for index in range(scenarios.echo_sockets(config))]
    fanouts = [scenarios.fanout_room(size) for size in (*config.sizes, config.crowd_sockets)]
    return [
        "warm",
        "burst",
        "flood",
        scenarios.SUSTAINED_ROOM,
        *echo,
        *fanouts,
        *scenarios.churn_rooms(config),
        *scenarios.restart_rooms(config),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development (writes under var/)")
    parser.add_argument("--out", help="markdown to write (default docs/benchmarks.md; var/bench-quick/ with --quick)")
    parser.add_argument(
        "--layers",
        default="fanout,before,stock",
        help="site layers to run: fanout, before (the project layer on redis-py 2.10.6: echo and fan-out only), "
        "stock (default all three)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the Channels 4 peer")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"phases to run, of {', '.join(PHASES)} (default all)"
    )
    # 60 minutes: the phases take about 40 on the 2-core machine, the crowd's opening of
    # 10,000 sockets the longest; a phase that would not fit is skipped and reported.
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds before the run stops itself (3600)")
    args = parser.parse_args(argv)

    config = scenarios.QUICK if args.quick else scenarios.FULL
    default_out = "var/bench-quick/benchmarks.md" if args.quick else "docs/benchmarks.md"
    out = Path(args.out or REPO / default_out).resolve()
    layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    unknown = [layer for layer in layers if layer not in LAYERS]
    if unknown:
        parser.error(f"unknown layer(s): {', '.join(unknown)}")
    phases = tuple(phase.strip() for phase in args.phases.split(",") if phase.strip())
    if not phases or any(phase not in PHASES for phase in phases):
        parser.error(f"--phases takes some of: {', '.join(PHASES)}")
    with_peer = not args.no_peer
    if with_peer and not PeerTarget.available():
        print("bench/.venv-peer is missing (make bench creates it): skipping the Channels 4 peer", flush=True)
        with_peer = False

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGALRM, _stop)
    signal.alarm(int(args.time_limit))
    started = time.monotonic()
    clock = Clock(started=started, last_start=started + args.time_limit - min(PHASE_RESERVE, args.time_limit / 3))
    results: dict = {
        "command": "python -m bench.run" + "".join(f" {arg}" for arg in (sys.argv[1:] if argv is None else argv)),
        "quick": args.quick,
        "revision": revision(),
        "started_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "process": prepare_process(),
        "machine": machine(),
        "versions": versions(with_peer, bool({"stock", "before"} & set(layers))),
        "config": scenarios.config_dict(config),
        "targets": {},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            # The project's layer first, then the peer it is compared with, then the stock
            # layer (the slowest to measure: it waits out every lost message).
            for key in sorted(layers, key=["fanout", "before", "stock"].index):
                results["targets"][key] = {}
                run_site(key, config, Path(workdir) / key, clock, results["targets"][key], phases)
                if key == "fanout" and with_peer:
                    results["targets"]["peer"] = {}
                    run_peer(config, Path(workdir) / "peer", clock, results["targets"]["peer"], phases)
            if with_peer and "peer" not in results["targets"]:
                results["targets"]["peer"] = {}
                run_peer(config, Path(workdir) / "peer", clock, results["targets"]["peer"], phases)
    except TimeLimit as stop:
        results["stopped"] = f"{stop} after {clock.elapsed():.0f} s: the report has what was measured before"
        print(f"bench: {results['stopped']}", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["targets"] = {key: part for key, part in results["targets"].items() if part}
    report.write(out, results)
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(f"[{results['duration_s']:6.1f}s] wrote {shown} and {shown.parent / shown.stem}/", flush=True)
    failed = [f"{part['label']}: {error}" for part in results["targets"].values() for error in part.get("errors", [])]
    for failure in failed:
        print(f"bench: failed: {failure}", file=sys.stderr)
    skipped = [name for part in results["targets"].values() for name in part.get("skipped", [])]
    if skipped:
        print(f"bench: {len(skipped)} phase(s) skipped for lack of time", file=sys.stderr)
    return 2 if "stopped" in results else 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
