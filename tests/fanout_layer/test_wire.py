"""The layer stores the bytes it stored on msgpack-python 0.5.6: old and new processes share a prefix.

The layer moved from asgi_redis's serializer on msgpack-python 0.5.6 (``packb(use_bin_type=True)``,
``unpackb(encoding="utf8")``) to msgpack 1.x (``packb(use_bin_type=True)``,
``unpackb(raw=False, strict_map_key=False)``). During a rolling deploy, processes of both kinds
read and write the same Redis, so the bytes must be the same both ways; no new prefix is needed.

The digests and bytes below were captured from msgpack-python 0.5.6 (the site's previous runtime
set) packing these very messages; a body stored by an old process is read back here as the old
process read it.
"""

import hashlib

import pytest

from fanout_layer.layer import pack, unpack

# Messages as the site's layer carries them, and the edges of msgpack's formats (str 8/16/32,
# bin 8/16/32, every int width, floats, maps and arrays past 15 entries, non-str keys).
MESSAGES = {
    "websocket.receive": {
        "reply_channel": "daphne.response.AbCdEfGh!xYz",
        "path": "/chat/stream/",
        "order": 3,
        "text": '{"command": "send", "room": "lobby", "message": "h\u00e9llo \u2603 \U0001f600"}',
        "bytes": None,
    },
    "websocket.connect": {
        "reply_channel": "daphne.response.AbCdEfGh!xYz",
        "path": "/liveblog/x/stream/",
        "order": 0,
        "headers": [[b"host", b"127.0.0.1:8000"], [b"cookie", b"sessionid=abc"]],
        "query_string": b"since=12",
        "client": ["127.0.0.1", 51234],
        "server": ["127.0.0.1", 8000],
    },
    "http.request": {
        "reply_channel": "http.response!q",
        "http_version": "1.1",
        "method": "POST",
        "path": "/admin/",
        "body": bytes(range(256)) * 300,
        "headers": [],
        "scheme": "http",
    },
    "reply": {"text": "x" * 31, "close": False, "accept": True},
    "edges": {
        "ints": [0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2**32, 2**63 - 1, -(2**63)],
        "floats": [0.0, 1.5, -2.25, 1e300],
        "strs": ["", "a" * 31, "b" * 32, "c" * 255, "d" * 256, "e" * 65536],
        "bins": [b"", b"\x00" * 255, b"\x01" * 256, b"\x02" * 65536],
        "none": None,
        "bools": [True, False],
        "nested": {"a": {"b": {"c": [1, [2, [3]]]}}},
        "int_keys": {1: "one", 2: "two"},
        "bytes_key": {b"k": 1},
        "tuple": (1, 2),
        "big_map": {str(n): n for n in range(20)},
        "big_list": list(range(20)),
    },
}

# sha256 of msgpack-python 0.5.6's packb(message, use_bin_type=True), and its length.
PACKED_BY_0_5_6 = {
    "websocket.receive": (150, "2a128b3576382c45d92690c2b4755cac6ec2345db51ad0ff7a02fdc865c5a8d7"),
    "websocket.connect": (197, "d14b1608d93224dc70b2d157a19d75229cb3c2bf2e6930412d303a3ca08c9429"),
    "http.request": (76904, "f6c26f6eb227afac0b825be0c54349bec6d5330888bd7eddd1f368208f1dad4f"),
    "reply": (53, "19f9edf4767c75b1f2d0bc79430ef08b5a567de10446e34c896f3d2ef7beefbf"),
    "edges": (132489, "6328a85963ca12893bc03e34c1dd85b6fea0fd7ba81792dc905289ed5fc443d2"),
}

# Whole bodies as msgpack-python 0.5.6 wrote them, to read back.
BODIES_BY_0_5_6 = {
    "websocket.receive": "85ad7265706c795f6368616e6e656cbc646170686e652e726573706f6e73652e41624364456647682178597aa4"
    "70617468ad2f636861742f73747265616d2fa56f7264657203a474657874d9427b22636f6d6d616e64223a202273656e64222c20"
    "22726f6f6d223a20226c6f626279222c20226d657373616765223a202268c3a96c6c6f20e2988320f09f9880227da56279746573c0",
    "websocket.connect": "87ad7265706c795f6368616e6e656cbc646170686e652e726573706f6e73652e41624364456647682178597aa4"
    "70617468b32f6c697665626c6f672f782f73747265616d2fa56f7264657200a7686561646572739292c404686f7374c40e313237"
    "2e302e302e313a3830303092c406636f6f6b6965c40d73657373696f6e69643d616263ac71756572795f737472696e67c40873696e"
    "63653d3132a6636c69656e7492a93132372e302e302e31cdc822a673657276657292a93132372e302e302e31cd1f40",
    "reply": "83a474657874bf78787878787878787878787878787878787878787878787878787878787878a5636c6f7365c2a661636365"
    "7074c3",
}


def as_read_by_0_5_6(value):
    """What msgpack-python 0.5.6's unpackb(encoding="utf8") gives back: tuples come back as lists."""
    if isinstance(value, dict):
        return {key: as_read_by_0_5_6(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_read_by_0_5_6(item) for item in value]
    return value


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_layer_packs_the_bytes_msgpack_0_5_6_packed(name):
    packed = pack(MESSAGES[name])

    assert (len(packed), hashlib.sha256(packed).hexdigest()) == PACKED_BY_0_5_6[name]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_layer_reads_back_what_msgpack_0_5_6_read(name):
    assert unpack(pack(MESSAGES[name])) == as_read_by_0_5_6(MESSAGES[name])


@pytest.mark.parametrize("name", sorted(BODIES_BY_0_5_6))
def test_bodies_an_old_process_stored_read_as_it_wrote_them(name):
    body = bytes.fromhex(BODIES_BY_0_5_6[name])

    assert unpack(body) == as_read_by_0_5_6(MESSAGES[name])
    assert pack(unpack(body)) == body


def test_the_layer_serializes_through_pack_and_unpack(make_layer):
    layer = make_layer()
    message = MESSAGES["websocket.connect"]

    assert layer.serialize(message) == pack(message)
    assert layer.deserialize(layer.serialize(message)) == as_read_by_0_5_6(message)
