"""The kit's settings (channels1_kit/conf.py) and what its app adds to every worker (apps.py)."""

import pytest
from channels.routing import Router, route
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from channels1_kit import conf, health


def test_unset_settings_take_the_documented_defaults():
    assert conf.setting("HEARTBEAT_SECONDS") == 10
    assert conf.setting("HEALTH_CHANNEL") == "worker.health"
    with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=3):
        assert conf.setting("HEARTBEAT_SECONDS") == 3
    conf.check()


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("CHANNELS1_KIT_HEARTBEAT_SECONDS", 0, "must be more than 0"),
        ("CHANNELS1_KIT_SWEEP_SECONDS", -1, "must be 0 or more"),
        ("CHANNELS1_KIT_MAX_FRAME_BYTES", "64k", "must be a number"),
        ("CHANNELS1_KIT_ORDER_STALL_SECONDS", True, "must be a number"),
        ("CHANNELS1_KIT_HEALTHZ_PATH", "healthz", "must start with /"),
        ("CHANNELS1_KIT_HEALTH_CHANNEL", "", "non-empty string"),
        ("CHANNELS1_KIT_SWEEP_SECOND", 5, "Unknown kit setting(s): CHANNELS1_KIT_SWEEP_SECOND"),
        ("CHANNELS1_KIT_CHANNEL_SESSION_SECONDS", "5m", "must be a number of seconds"),
        # Renewed by daphne's heartbeat (10 s): shorter than three would end open sockets' sessions.
        ("CHANNELS1_KIT_CHANNEL_SESSION_SECONDS", 20, "at least three heartbeats (30 s)"),
    ],
)
def test_a_setting_the_kit_cannot_use_is_refused_by_name(name, value, says):
    with override_settings(**{name: value}):
        with pytest.raises(ImproperlyConfigured) as refused:
            conf.check()
    assert says in str(refused.value)
    assert name in str(refused.value)


def test_sweeping_can_be_turned_off_with_zero():
    with override_settings(CHANNELS1_KIT_SWEEP_SECONDS=0):
        conf.check()


def test_the_health_route_is_added_once_and_never_over_the_sites_own():
    router = Router([route("websocket.connect", lambda message: None)])
    health.route_health(router)
    health.route_health(router)
    assert sorted(router.channels) == ["websocket.connect", "worker.health"]
    assert [tuple(r.channels) for r in router.root.routing].count(("worker.health",)) == 1

    def own(message):
        pass

    routed = Router([route("worker.health", own)])
    health.route_health(routed)
    assert [r.consumer for r in routed.root.routing] == [own]
    with override_settings(CHANNELS1_KIT_HEALTH_CHANNEL="ops.health"):
        health.route_health(routed)
    assert sorted(routed.channels) == ["ops.health", "worker.health"]
