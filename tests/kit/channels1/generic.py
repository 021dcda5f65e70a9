"""Generic consumers, as Channels 1 documents them; no models here, so channels.test can route
them in the test process (whose settings do not install the site's apps)."""

import os

from channels.generic.websockets import JsonWebsocketConsumer, WebsocketDemultiplexer


class EchoJson(JsonWebsocketConsumer):
    """Mounted with route_class: each JSON frame comes back with the worker that answered it."""

    def receive(self, content, **kwargs):
        self.send({"echo": content, "worker": os.getpid()})


class EchoStream(JsonWebsocketConsumer):
    """One stream of a demultiplexer: it answers through the multiplexer it is handed."""

    def connect(self, message, multiplexer, **kwargs):
        # The demultiplexer has accepted the socket already.
        pass

    def receive(self, content, multiplexer, **kwargs):
        multiplexer.send({"echo": content})


class EchoDemultiplexer(WebsocketDemultiplexer):
    consumers = {"echo": EchoStream}
