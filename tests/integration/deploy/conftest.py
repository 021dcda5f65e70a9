"""Fixtures of the deployment tests: a private PostgreSQL, and one server deployed the
docs/deploying.md way (deploy/supervisor + deploy/nginx) that the test_server_* modules share.

Every test here uses project.settings.prod, as a deployment does.
"""

import uuid
from dataclasses import dataclass

import pytest

from tests.integration.deploy.deployment import SupervisorDeployment
from tests.integration.deploy.frontdoor import Nginx
from tests.integration.deploy.servers import (
    PostgresCluster,
    Site,
    remove_unless_kept,
    require_binary,
    require_root,
    shared_tmpdir,
)
from tests.integration.deploy.traffic import seed
from tools.processes import RedisServer, free_port

# Logins on the server deployment; password: the name twice.
USERS = ("alice", "bob", "carol", "dave")


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the session; each deployment gets a database of its own."""
    require_root()
    cluster = PostgresCluster()
    try:
        cluster.start()
    except Exception:
        print(cluster.tail())
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def fresh_database(postgres):
    """Makes databases on the session's cluster, and drops them after the test."""
    made = []

    def make() -> str:
        name = f"deploy_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return postgres.create_database(name)

    yield make
    for name in made:
        postgres.drop_database(name)


@dataclass
class Server:
    """One server as docs/deploying.md sets it up: nginx on `port` in front of deploy/supervisor."""

    site: Site
    deployment: SupervisorDeployment
    nginx: Nginx
    redis: RedisServer
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return f"{self.deployment.logs()}\n--- nginx error.log\n{self.nginx.logs()}"


@pytest.fixture(scope="package")
def server(postgres):
    require_root()
    nginx_binary = require_binary("nginx", "nginx-light")
    workdir = shared_tmpdir("deploy-server-")
    redis = RedisServer(workdir)
    database = f"server_{uuid.uuid4().hex[:10]}"
    deployment = nginx = None
    try:
        redis.start()
        site = Site(workdir, database_url=postgres.create_database(database), redis_url=redis.url)
        # Small enough that the monitoring test can fill a channel quickly; far above the
        # backlog any other test makes.
        site.values["CHANNEL_LAYER_CAPACITY"] = "300"
        # The monitoring test queues a burst of 40 messages from one socket; the chat's
        # per-socket rate limit would refuse most of them before any worker is involved.
        site.values["CHAT_RATE_LIMIT_MESSAGES"] = "1000"
        # ...and so would daphne's frame budget (tests/integration/test_floods.py tests it).
        site.values["WEBSOCKET_FRAME_BURST"] = "1000"
        site.values["WEBSOCKET_FRAME_RATE"] = "1000"
        # ...and the client's (its 40 frames are from one login). nginx in front holds an
        # address to the same handshake and socket budgets as daphne would, and
        # test_server_front_door.py checks them: daphne's are lifted so that it sees nginx's.
        site.values["WEBSOCKET_CLIENT_FRAME_RATE"] = "0"
        site.values["WEBSOCKET_HANDSHAKE_RATE"] = "0"
        site.values["WEBSOCKET_CLIENT_SOCKETS"] = "0"
        deployment = SupervisorDeployment(site)
        deployment.start()
        port = free_port()
        nginx = Nginx(
            workdir / "nginx",
            port=port,
            daphne=deployment.daphne_bind,
            gunicorn=deployment.gunicorn_bind,
            static_root=site.static_root,
            binary=nginx_binary,
        ).start(site.env())
        seed(site, users=USERS)
        yield Server(site=site, deployment=deployment, nginx=nginx, redis=redis, port=port)
    except Exception:
        if deployment is not None:
            print(deployment.logs())
        raise
    finally:
        if nginx is not None:
            nginx.stop()
        leftovers = deployment.stop() if deployment is not None else []
        redis.stop()
        postgres.drop_database(database)
        remove_unless_kept(workdir)
        assert leftovers == [], f"processes outlived supervisord: {leftovers}"


@pytest.fixture
def all_programs_running(server):
    """Whatever a test stopped or started, the next one finds the deployment as configured."""
    yield
    deployment = server.deployment
    # Exits non-zero for programs already in the state asked for; the wait below judges.
    deployment.sitectl("start", "worker:*", "worker-websocket:*")
    deployment.sitectl("stop", "worker-spare:*")
    deployment.wait_until_running(deployment.expected_running())
