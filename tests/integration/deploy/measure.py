"""How fast do workers drain chat traffic, and what does it cost Redis? For docs/deploying.md.

    sudo .venv/bin/python -m tests.integration.deploy.measure [--sockets 30] [--frames 10]

Deploys one server as the tests do (deploy/supervisor, a private PostgreSQL and Redis),
opens --sockets chat sockets in rooms of 10 members, then for 1, 2 and 4 workers: stops
every worker, queues --frames chat messages per socket on websocket.receive, starts the
workers and times the drain. Each message costs a worker what a real one does (session,
ordering, an INSERT, a group send to its room); daphne then fans it out to 10 sockets.
Prints, per worker count: messages per second, the workers' CPU per message, and Redis's
CPU per message (from INFO cpu), so: how many workers a core and a Redis shard carry.
Needs root (it runs PostgreSQL as postgres) and takes about a minute.
"""

import argparse
import os
import signal
import time

import redis

from tests.integration.deploy.deployment import SupervisorDeployment
from tests.integration.deploy.servers import PostgresCluster, Site, remove_unless_kept, shared_tmpdir
from tests.integration.deploy.traffic import CHAT, Listener, seed
from tools.processes import RedisServer, cpu_seconds
from tools.site_stack import login_cookie

ROOM_SIZE = 10


def redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def stored_bodies(client) -> int:
    """HSETs so far: every send stores one message body."""
    return client.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)


def backlog(client) -> int:
    """Chat frames not handled yet: on websocket.receive, or parked by enforce_ordering."""
    return client.llen("asgi:websocket.receive") + sum(client.llen(key) for key in client.keys("asgi:__wait__.*"))


def drain(deployment, client, sockets, workers: int, frames: int, round_number: int, burst: bool) -> dict:
    """Queues frames while `workers` booted workers are frozen (SIGSTOP), then times their drain.

    Frozen rather than stopped, so that neither a worker's start nor its boot's CPU is counted.
    Steady: every socket sends one frame per round, so a socket's frames lie apart in the
    queue, as when people chat. Burst: each socket's frames arrive together.
    """
    names = [f"worker:worker-{n}" for n in range(workers)]
    deployment.sitectl("stop", "worker:*")
    deployment.ctl("start", *names)
    deployment.wait_until_serving()
    pids = list(deployment.pids(names).values())
    total = len(sockets) * frames
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for frame in range(frames):
            for number, (room, sock) in enumerate(sockets):
                sock.send({"command": "send", "room": room, "message": f"r{round_number} s{number} f{frame}"})
            if not burst:
                # Lets daphne queue this round's frames before the next round's.
                time.sleep(0.05)
        # A frozen worker may hold one frame its BLPOP took; the rest wait in Redis.
        deadline = time.monotonic() + 30
        while backlog(client) < total - workers:
            assert time.monotonic() < deadline, "the frames did not all reach websocket.receive"
            time.sleep(0.05)
        redis_before, bodies_before = redis_cpu(client), stored_bodies(client)
        workers_before = sum(cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    while backlog(client):
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    return {
        "workers": workers,
        "per_second": total / elapsed,
        "worker_cpu_ms": 1000 * (sum(cpu_seconds(pid) for pid in pids) - workers_before) / total,
        "redis_cpu_ms": 1000 * (redis_cpu(client) - redis_before) / total,
        # Each chat message is one group send (one body). A frame enforce_ordering parks, because
        # a worker took it before its predecessor was handled, costs two more: to its socket's
        # wait channel and back onto websocket.receive.
        "requeued": max(stored_bodies(client) - bodies_before - total, 0) / (2 * total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=30)
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args()

    postgres = PostgresCluster()
    workdir = shared_tmpdir("deploy-measure-")
    server = RedisServer(workdir)
    deployment = None
    sockets = []
    try:
        postgres.start()
        server.start()
        site = Site(workdir, database_url=postgres.create_database("measure"), redis_url=server.url)
        site.values["CHAT_RATE_LIMIT_MESSAGES"] = "100000"
        site.values["WEBSOCKET_FRAME_BURST"] = "100000"
        site.values["WEBSOCKET_FRAME_RATE"] = "100000"
        # Every socket from one address, at once: the per-client budgets lifted too.
        site.values["WEBSOCKET_HANDSHAKE_RATE"] = "0"
        site.values["WEBSOCKET_CLIENT_SOCKETS"] = "0"
        site.values["WEBSOCKET_CLIENT_FRAME_RATE"] = "0"
        deployment = SupervisorDeployment(site, workers=4, websocket_workers=0, spare_workers=0)
        deployment.start()
        users = [f"user{n}" for n in range(args.sockets)]
        rooms = [f"room{n}" for n in range((args.sockets + ROOM_SIZE - 1) // ROOM_SIZE)]
        seed(site, users=users, rooms=rooms)
        http, ws = f"http://{deployment.gunicorn_bind}", f"ws://{deployment.daphne_bind}"
        for number, user in enumerate(users):
            room = rooms[number // ROOM_SIZE]
            sock = Listener(ws + CHAT, cookie=login_cookie(http, user, user * 2))
            sock.send({"command": "join", "room": room})
            sock.wait_for(lambda frame, room=room: frame.get("join") == room)
            sockets.append((room, sock))
        client = redis.StrictRedis(port=server.port)
        results = []
        for burst in (False, True):
            for workers in (1, 2, 4):
                row = drain(deployment, client, sockets, workers, args.frames, len(results), burst)
                results.append({**row, "arrival": "burst" if burst else "steady"})
        print(f"\n{args.sockets} sockets in rooms of {ROOM_SIZE}, {args.frames} messages per socket per row")
        print("| arrival | workers | messages/s | worker CPU ms/message | Redis CPU ms/message | requeued/message |")
        print("|---|---|---|---|---|---|")
        for row in results:
            cells = [row["arrival"], row["workers"], f"{row['per_second']:.0f}", f"{row['worker_cpu_ms']:.1f}"]
            cells += [f"{row['redis_cpu_ms']:.2f}", f"{row['requeued']:.2f}"]
            print("| " + " | ".join(str(cell) for cell in cells) + " |")
    finally:
        for _, sock in sockets:
            sock.close()
        if deployment is not None:
            deployment.stop()
        server.stop()
        postgres.stop()
        remove_unless_kept(workdir)


if __name__ == "__main__":
    main()
