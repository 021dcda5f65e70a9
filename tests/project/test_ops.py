"""The operator's tools without processes: the channel report's arithmetic, who may read
/ops/channels, and how a runworker stops (channels1_kit/workers.py)."""

import signal
from types import SimpleNamespace

import pytest
from channels.worker import Worker
from django.contrib.auth.models import User

from channels1_kit import monitoring
from channels1_kit.workers import stop_after_message_in_hand

REPORT = {"channels": {}, "backlog": 0, "messages_total": 0, "channel_full_total": 0, "interval": 1.0}


def statistics(count: int, pending: int, full: int = 0, age: int = 0) -> dict:
    return {"messages_count": count, "messages_pending": pending, "channel_full_count": full, "messages_max_age": age}


def test_the_report_derives_rates_from_two_readings_of_the_counters(monkeypatch):
    readings = iter(
        [
            {"websocket.receive": statistics(100, 10), "daphne.response.abc!": statistics(7, 0)},
            # 30 sent in the interval, the backlog grew by 20: 10 left the channel.
            {"websocket.receive": statistics(130, 30, full=2, age=3), "daphne.response.abc!": statistics(9, 1)},
        ]
    )
    clock = iter([100.0, 102.0])
    monkeypatch.setattr(monitoring, "routed_channels", lambda: ["websocket.receive"])
    monkeypatch.setattr(monitoring, "reply_channels", lambda: ["daphne.response.abc!"])
    monkeypatch.setattr(monitoring, "channel_statistics", lambda channels: next(readings))
    monkeypatch.setattr(monitoring.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(monitoring.time, "monotonic", lambda: next(clock))
    layer = SimpleNamespace(global_statistics=lambda: {"messages_count": 139, "channel_full_count": 2})
    monkeypatch.setattr(monitoring, "channel_layer", lambda: layer)

    report = monitoring.channel_report(interval=2.0)

    assert report["channels"]["websocket.receive"] == {
        "backlog": 30,
        "oldest_message_age": 3,
        "messages_per_second": 15.0,
        "consumed_per_second": 5.0,
        "messages_total": 130,
        "channel_full_total": 2,
    }
    # A daphne's reply channel is listed, but its backlog is the daphne's, not the workers'.
    assert report["channels"]["daphne.response.abc!"]["backlog"] == 1
    # With the replies dropped because that daphne is gone (channels1_kit/gone.py): none here.
    assert report["channels"]["daphne.response.abc!"]["replies_dropped_gone"] == 0
    assert report["replies_dropped_to_gone_sockets"] == 0
    assert report["backlog"] == 30
    assert (report["messages_total"], report["channel_full_total"], report["interval"]) == (139, 2, 2.0)


@pytest.mark.parametrize("interval", [0, -1, 11, float("nan")])
def test_the_report_refuses_an_interval_outside_its_bounds(interval):
    with pytest.raises(ValueError):
        monitoring.channel_report(interval=interval)


@pytest.fixture
def fixed_report(monkeypatch):
    monkeypatch.setattr(monitoring, "channel_report", lambda interval: {**REPORT, "interval": interval})


def test_ops_channels_answers_the_monitoring_token_only(client, settings, fixed_report):
    settings.CHANNELS1_KIT_MONITORING_TOKEN = "s3cret"
    assert client.get("/ops/channels").status_code == 401
    assert client.get("/ops/channels", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/ops/channels", HTTP_AUTHORIZATION="Basic s3cret").status_code == 401

    response = client.get("/ops/channels?interval=0.5", HTTP_AUTHORIZATION="Bearer s3cret")

    assert response.status_code == 200
    assert response.json() == {**REPORT, "interval": 0.5}
    assert response["Cache-Control"] == "no-store"


def test_ops_channels_with_no_token_set_is_for_staff_only(client, settings, fixed_report, db):
    settings.CHANNELS1_KIT_MONITORING_TOKEN = ""
    assert client.get("/ops/channels", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    client.force_login(User.objects.create_user("plain"))
    assert client.get("/ops/channels").status_code == 401
    client.force_login(User.objects.create_user("boss", is_staff=True))
    assert client.get("/ops/channels").status_code == 200


def test_ops_channels_says_when_the_interval_is_refused(client, settings):
    settings.CHANNELS1_KIT_MONITORING_TOKEN = "s3cret"
    response = client.get("/ops/channels?interval=abc", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid-interval"


class OneMessageLayer:
    """A channel layer whose only receive is interrupted by SIGTERM and still brings a message,
    as when the signal lands while Redis hands a message over."""

    def __init__(self, handled: list):
        self.worker = None
        self.receives = 0
        self.router = SimpleNamespace(
            channels={"worker.health"},
            match=lambda message: (lambda message: handled.append(message.content), {}),
        )

    def receive_many(self, channels, block=False):
        self.receives += 1
        self.worker.sigterm_handler(signal.SIGTERM, None)
        return "worker.health", {"n": self.receives}


def test_a_stop_signal_during_a_receive_lets_the_worker_handle_what_it_took_then_stop(db):
    # db: the worker closes stale database connections around each consumer, as in production.
    handled: list = []
    layer = OneMessageLayer(handled)
    # No real signal handlers in the test process; the layer calls the handler instead.
    worker = Worker(channel_layer=layer, signal_handlers=False)
    layer.worker = worker
    stop_after_message_in_hand(sender=worker)

    worker.run()

    assert handled == [{"n": 1}], "the message in hand is handled, and no other is taken"


def test_a_second_stop_signal_exits_at_once():
    worker = Worker(channel_layer=OneMessageLayer([]), signal_handlers=False)
    stop_after_message_in_hand(sender=worker)
    worker.sigterm_handler(signal.SIGTERM, None)
    with pytest.raises(SystemExit):
        worker.sigterm_handler(signal.SIGTERM, None)


def test_the_report_lists_the_channels_runworker_consumes():
    channels = monitoring.routed_channels()
    assert channels[:4] == ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"]
    assert "worker.health" in channels
    # daphne sends it, nothing here routes it: it only expires, and is no backlog of the workers'.
    assert "http.disconnect" not in channels
