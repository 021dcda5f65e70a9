import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration starts real processes; mark it so it can be selected."""
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def reactor() -> Iterator:
    """The real Twisted reactor, in a thread of the test process; one per session, since a reactor
    that stopped cannot run again."""
    from twisted.internet import reactor as twisted_reactor

    from tests.fanout_layer.support import Reactor

    thread = threading.Thread(target=twisted_reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    yield Reactor(twisted_reactor)
    twisted_reactor.callFromThread(twisted_reactor.stop)
    thread.join(10)


@pytest.fixture(autouse=True)
def _channel_sessions_beside_http_sessions(request):
    """In-process tests keep channel sessions in SESSION_ENGINE.

    channels' test client (WSClient.login, force_login) writes the login into a session of the
    channel session engine and sends that session's key as the HTTP session cookie, which the
    consumer reads from SESSION_ENGINE: it works only with one engine for both. The processes
    of tests/integration run the site's own settings (channel sessions in Redis)."""
    if request.node.get_closest_marker("integration"):
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.CHANNEL_SESSION_ENGINE = settings.SESSION_ENGINE
    yield


@pytest.fixture(autouse=True)
def _fresh_presence(request, monkeypatch):
    """In-process tests count presence in the process (the in-memory layer has no Redis): each
    test starts with no one in any group, whatever the tests before it joined."""
    if request.node.get_closest_marker("integration"):
        return
    from channels1_kit import presence

    monkeypatch.setattr(presence, "_local", presence._LocalStore())
