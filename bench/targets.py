"""What the benchmark drives: the site under one channel layer or the other, or the Channels 4 peer.

A target starts its real processes on loopback ports, says where its WebSockets are and
which processes count as the server (for CPU and memory), and stops them all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tools.processes import REPO, VENV_BIN, Process, RedisServer, free_port, redis_server_binary, wait_for_port
from tools.site_stack import Stack, login_cookie

PEER_DIR = REPO / "bench" / "peer"
PEER_VENV = REPO / "bench" / ".venv-peer"
PEER_PACKAGES = ["Django", "channels", "channels-redis", "daphne", "redis", "msgpack", "Twisted", "autobahn"]

PASSWORD = "bench-password"
# A login of its own for the client that floods with reconnects: not one of the bystanders'.
FLOODER = "bench-flooder"
LIVEBLOG = "bench"
PAGE_LIVEBLOG = "page"


# Stock asgi_redis 1.4.3 runs only on the redis-py 2.10 and msgpack-python 0.5 it was written for,
# which this site's runtime set left (issue 20), and the kit now needs redis-py 8. So the stock
# layer runs the site as of its last commit on those libraries, with that commit's own pins, which
# make bench unpacks and installs here (the Makefile's STOCK_SITE_COMMIT says which and why); the
# commit is in STOCK_SITE/.commit.
STOCK_SITE = REPO / "bench" / ".stock-site"

# The two layers the site runs under. The stock layer gets asgi_redis's own default
# capacity (100): project/settings/base.py would otherwise give it 1,000.
LAYERS = {
    "fanout": {
        "label": "project layer (fanout_layer)",
        "backend": "fanout_layer.FanoutRedisChannelLayer",
        "env": {},
        "site": REPO,
        "venv_bin": VENV_BIN,
    },
    # The project's layer as it was before issue 20 moved it to redis-py 8 and msgpack 1: the stock
    # layer's site (its last commit on redis 2.10.6 and msgpack-python 0.5.6) with its own layer.
    # For the CPU per echo and per delivery before and after, so only the phases that measure them.
    "before": {
        "label": "project layer on redis-py 2.10.6 (before issue 20)",
        "backend": "fanout_layer.FanoutRedisChannelLayer",
        "env": {},
        "site": STOCK_SITE,
        "venv_bin": STOCK_SITE / ".venv" / "bin",
        "phases": ("small", "large"),
    },
    "stock": {
        "label": "stock asgi_redis",
        "backend": "asgi_redis.RedisChannelLayer",
        "env": {"CHANNEL_LAYER_CAPACITY": "100"},
        "site": STOCK_SITE,
        "venv_bin": STOCK_SITE / ".venv" / "bin",
    },
}
PEER_LABEL = "Channels 4 peer"


# The bench opens thousands of sockets from one address, a few logins each holding hundreds:
# the per-client budgets (channels1_kit/client_budgets.py) would refuse most of them, so they
# are lifted as a load test lifts them. The per-socket frame budget stays (the echo beside a
# flooding socket measures it).
CLIENT_BUDGETS_LIFTED = {
    "WEBSOCKET_HANDSHAKE_RATE": "0",
    "WEBSOCKET_CLIENT_SOCKETS": "0",
    "WEBSOCKET_CLIENT_FRAME_RATE": "0",
}


class SiteStack(Stack):
    """The integration stack with a few more environment variables for every process."""

    def __init__(self, workdir: Path, *, layer: str, extra_env: dict, daphnes: int = 2, workers: int = 2, **site: Path):
        super().__init__(workdir, daphnes=daphnes, workers=workers, layer=layer, **site)
        self.extra_env = dict(extra_env)

    @property
    def env(self) -> dict:
        env = super().env
        env.update(self.extra_env)
        return env

    def stop(self) -> None:
        # Every process is asked at once, so their shutdowns (a worker finishing its wait on
        # Redis) overlap; Stack.stop then waits for each and kills what is left.
        for process in [*self.daphnes, *self.workers, self.gunicorn]:
            if process is not None:
                process.send_signal(signal.SIGTERM)
        super().stop()


class SiteTarget:
    """The site: Redis, two daphnes, two runworkers and gunicorn, with bench users, rooms and a liveblog."""

    kind = "site"

    def __init__(
        self,
        key: str,
        workdir: Path,
        *,
        users: int,
        rooms: list[str],
        budgets_lifted: bool = True,
        extra_env: dict | None = None,
    ):
        """`budgets_lifted=False` keeps the production client budgets: for the phase that measures
        them; `extra_env`, settings of one phase's own (the restart's production drain)."""
        layer = LAYERS[key]
        self.key = key
        self.label = layer["label"]
        self.backend = layer["backend"]
        lifted = CLIENT_BUDGETS_LIFTED if budgets_lifted else {}
        site, venv_bin = layer["site"], layer["venv_bin"]
        if not (venv_bin / "python").exists():
            raise RuntimeError(f"{self.label}: no {venv_bin / 'python'} (make bench prepares it)")
        self.stack = SiteStack(
            workdir,
            layer=layer["backend"],
            extra_env={**lifted, **layer["env"], **(extra_env or {})},
            site=site,
            venv_bin=venv_bin,
        )
        # The site's Python, for the processes of the bench that use its models (the post driver).
        self.python = str(venv_bin / "python")
        self.user_count = users
        self.rooms = rooms
        self.cookies: list[str] = []

    def start(self) -> None:
        self.stack.start()
        self.stack.django(
            "import json\n"
            "from django.contrib.auth.models import User\n"
            "from chat.services import room_create\n"
            "from liveblog.services import liveblog_create, post_create\n"
            f"for i in range({self.user_count}):\n"
            f"    User.objects.create_user(f'bench{{i}}', password={PASSWORD!r})\n"
            f"User.objects.create_user({FLOODER!r}, password={PASSWORD!r})\n"
            f"for slug in {self.rooms!r}:\n"
            "    room_create(title=slug, slug=slug)\n"
            f"liveblog_create(title='Bench', slug={LIVEBLOG!r})\n"
            # The plain page the HTTP load reads: a liveblog with 20 posts.
            f"page = liveblog_create(title='Page', slug={PAGE_LIVEBLOG!r})\n"
            "for i in range(20):\n"
            "    post_create(liveblog=page, body=f'Post {i}: ' + 'A paragraph of a liveblog post. ' * 8)\n"
            "print(json.dumps(True))\n"
        )
        base = self.stack.http_url("")
        # Logging in is slow next to a socket: a few users, each with many sockets.
        self.cookies = [login_cookie(base, f"bench{i}", PASSWORD) for i in range(self.user_count)]
        self.flood_cookie = login_cookie(base, FLOODER, PASSWORD)

    def stop(self) -> None:
        self.stack.stop()

    def logs(self) -> str:
        return self.stack.logs()

    @property
    def daphne_count(self) -> int:
        return len(self.stack.daphne_ports)

    def chat_url(self, daphne: int) -> str:
        return self.stack.ws_url("/chat/stream/", daphne)

    def liveblog_url(self, daphne: int) -> str:
        return self.stack.ws_url(f"/liveblog/{LIVEBLOG}/stream/", daphne)

    def reader_url(self, index: int) -> str:
        """Where an anonymous page reads: the liveblog's stream."""
        return self.liveblog_url(index % self.daphne_count)

    def redis_keys(self) -> list[str]:
        return redis_keys(self.stack.redis.url)

    def cookie(self, index: int) -> str | None:
        return self.cookies[index % len(self.cookies)]

    @property
    def pids(self) -> dict[str, list[int]]:
        """The processes a message goes through, by kind (gunicorn is not one of them)."""
        return {
            "daphne": [process.pid for process in self.stack.daphnes],
            "worker": [process.pid for process in self.stack.workers],
            "redis": [self.stack.redis.process.pid],
        }

    @property
    def daphne_pids(self) -> list[int]:
        return [process.pid for process in self.stack.daphnes]

    @property
    def env(self) -> dict:
        return self.stack.env


class PeerStack:
    """Redis and two daphne 4 processes serving bench/peer from bench/.venv-peer."""

    def __init__(self, workdir: Path, *, daphnes: int = 2):
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.log_dir)
        self.daphne_count = daphnes
        self.daphnes: list[Process] = []
        self.daphne_ports: list[int] = []

    @property
    def env(self) -> dict:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "VIRTUAL_ENV"))}
        env.update(
            DJANGO_SETTINGS_MODULE="peerchat.settings",
            REDIS_URL=self.redis.url,
            PYTHONPATH=str(PEER_DIR),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        self.redis.start()
        for index in range(self.daphne_count):
            port = free_port()
            process = Process(
                f"peer-daphne-{index}",
                [str(PEER_VENV / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port), "peerchat.asgi:application"],
                env=self.env,
                log_dir=self.log_dir,
                cwd=PEER_DIR,
            )
            wait_for_port(port, process=process)
            self.daphnes.append(process)
            self.daphne_ports.append(port)

    def stop(self) -> None:
        for process in self.daphnes:
            process.send_signal(signal.SIGTERM)
        for process in self.daphnes:
            process.stop()
        self.redis.stop()

    def logs(self, lines: int = 30) -> str:
        processes = [*self.daphnes, self.redis.process]
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in processes if p is not None)


class PeerTarget:
    """The Channels 4 peer (bench/peer): consumers run in daphne, no workers, no login."""

    kind = "peer"
    key = "peer"
    label = PEER_LABEL

    def __init__(self, workdir: Path):
        self.stack = PeerStack(workdir)

    @staticmethod
    def available() -> bool:
        return (PEER_VENV / "bin" / "daphne").exists()

    def start(self) -> None:
        self.stack.start()

    def stop(self) -> None:
        self.stack.stop()

    def logs(self) -> str:
        return self.stack.logs()

    @property
    def daphne_count(self) -> int:
        return len(self.stack.daphne_ports)

    def chat_url(self, daphne: int) -> str:
        return f"ws://127.0.0.1:{self.stack.daphne_ports[daphne]}/chat/stream/"

    def cookie(self, index: int) -> str | None:
        return None

    # No logins: its "logged-in" flooder is an anonymous chat socket, as every one of its sockets.
    flood_cookie = None

    def reader_url(self, index: int) -> str:
        return self.chat_url(index % self.daphne_count)

    def redis_keys(self) -> list[str]:
        return redis_keys(self.stack.redis.url)

    @property
    def pids(self) -> dict[str, list[int]]:
        return {"daphne": [process.pid for process in self.stack.daphnes], "redis": [self.stack.redis.process.pid]}

    @property
    def daphne_pids(self) -> list[int]:
        return [process.pid for process in self.stack.daphnes]


def redis_keys(url: str) -> list[str]:
    """Every key of a target's Redis (SCAN: the servers go on meanwhile)."""
    import redis

    client = redis.StrictRedis.from_url(url)
    return [key.decode("utf8", "replace") for key in client.scan_iter(count=1000)]


def venv_versions(python: Path, names: list[str]) -> dict[str, str]:
    """The versions of names installed for that Python ("not installed" for one that is not), and its own."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "versions = {}\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        versions[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        versions[name] = 'not installed'\n"
        "versions['Python'] = sys.version.split()[0]\n"
        "print(json.dumps(versions))\n"
    )
    output = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(output)


def peer_versions() -> dict[str, str]:
    return venv_versions(PEER_VENV / "bin" / "python", PEER_PACKAGES)


def stock_site_versions(names: list[str]) -> dict[str, str]:
    """The stock layer's site: its packages' versions and the commit it runs (STOCK_SITE)."""
    versions = venv_versions(LAYERS["stock"]["venv_bin"] / "python", names)
    commit = STOCK_SITE / ".commit"
    versions["commit"] = commit.read_text().strip()[:12] if commit.exists() else "unknown"
    return versions


def redis_server_version() -> str:
    output = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    # "Redis server v=6.2.14 sha=... malloc=jemalloc-5.1.0 bits=64 build=..."
    for part in output.split():
        if part.startswith("v="):
            return part[2:]
    return output.strip()
