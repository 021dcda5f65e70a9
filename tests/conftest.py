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
