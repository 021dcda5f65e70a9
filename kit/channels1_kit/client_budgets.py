"""A budget per client, not only per socket: what one client may ask of the workers everyone shares.

The per-socket frame budget (channels1_kit/floods.py) is defeated by a client that keeps
opening sockets: each brings a fresh burst of frames, and a connect and a disconnect that each
cost a worker. So daphne's side of the layer (channels1_kit/interface.py) also budgets each
client, before anything of it enters Redis's websocket.* channels.

Who a client is. A handshake names up to two identities, and every budget applies to each:

* the browser session: the value of the Django session cookie (SESSION_COOKIE_NAME), hashed.
  A logged-in person's tabs share it. daphne never looks the session up: the sessions are in
  the database, and a query per handshake is the very cost being bounded. A client can invent
  cookie values, which is why
* its address always counts too: the peer's, or, when daphne runs with --proxy-headers, the
  last X-Forwarded-For entry, the one the proxy in front of daphne appended (daphne hands the
  consumers the first entry, which the client itself may have written). IPv6 addresses count
  by their /64, what one subscriber gets. An address may be many people (an office behind one
  NAT), so its budgets are CHANNELS1_KIT_ADDRESS_CLIENTS times a session's.

The budgets, and where each lives:

* Handshakes: a token bucket per identity (HANDSHAKE_BURST at once, then HANDSHAKE_RATE a
  second) in Redis, shared by every daphne. The kernel and the load balancer spread one
  client's handshakes over all of them, and a reconnect loop is exactly the client that would
  get N times its budget from N local buckets. One script, one round trip per handshake, on the
  layer's first shard so that both identities of a handshake meet in one script; no round trip
  at all for a client this daphne already knows is sent away.
* Open sockets: counted per identity on this daphne (CLIENT_SOCKETS), locally. A socket lives on
  one daphne, so the count is exact there and costs nothing; a count in Redis would need a write
  per disconnect and would be left behind by a killed daphne, locking people out. A client's
  total is at most CLIENT_SOCKETS times the daphnes, and the handshake budget bounds how fast
  it gets there.
* Frames: a token bucket per identity on this daphne (CLIENT_FRAME_BURST, CLIENT_FRAME_RATE)
  shared by all of the client's sockets there, on top of each socket's own budget. Local,
  because the layer must never make a Redis call per frame; a client's sockets on other daphnes
  draw on buckets there (again a bound of the daphne count).
* Sent away: an identity refused HANDSHAKE_AWAY_AFTER handshakes within FLOOD_WINDOW_SECONDS
  (counted in Redis), or FLOOD_CLOSE_AFTER frames by its client bucket within that window
  (counted here, then written to Redis in one call), is sent away for CLIENT_AWAY_SECONDS. Shared,
  so that every daphne refuses it; cached here, so that its retries cost no Redis call.

What the client gets:

* over its handshake or socket budget: HTTP 429 with Retry-After, and no worker hears of it;
* sent away: daphne accepts the handshake itself, sends {"error": "too-many-connections",
  "retry_after": N} and closes with CLOSE_GO_AWAY (4430). A browser's WebSocket reports a refused
  handshake as a failed connection and nothing more, so a close code is the one thing a page can
  honour: liveblog.js and chat.js wait N seconds before they connect again. Sent away for its
  frames, the client's open sockets on the daphne that saw the flood get the same frame and close.
  Sent away for its handshakes, its open sockets stay, under their frame budgets as before: the
  identity may be an address many people share (one of them reconnecting in a loop), and a socket
  already open costs nothing more than its frames. A frame is never dropped without its socket
  being told why.

Nothing is kept for a client once it has no socket here and its buckets have refilled (what
prune() drops is exactly what a new client would start with); the Redis entries expire once full.
"""

import hashlib
import ipaddress
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

import redis
from django.conf import settings

from channels1_kit.conf import setting
from channels1_kit.floods import FLOOD_WINDOW_SECONDS
from channels1_kit.outages import redis_trouble

logger = logging.getLogger(__name__)

# "Go away for a while": past 4429 (this socket flooded, reconnect slower), a client flooded.
CLOSE_GO_AWAY = 4430
# Seconds a client at its socket limit is told to wait: about how long a page takes to close.
SOCKETS_RETRY_AFTER = 10

SESSION, ADDRESS = "session", "address"
PASS, REFUSE, AWAY = "pass", "refuse", "away"

# KEYS: a hash per identity. ARGV: away seconds, the refusals' window, then for each key its
# burst, rate and refusals (within the window) before it is sent away. Returns {status, seconds
# as a string, 1-based key index}: 0 passed (a token taken from every key), 1 refused (retry
# after seconds), 2 sent away (for seconds). Redis's clock, not daphne's: the daphnes' hosts
# then agree on every bucket's refill.
HANDSHAKE = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local away_seconds = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local away = tonumber(redis.call('HGET', key, 'away') or '0')
  if away > now then
    return {2, tostring(away - now), i}
  end
end
local tokens, bursts, rates = {}, {}, {}
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  bursts[i] = tonumber(ARGV[3 * i])
  rates[i] = tonumber(ARGV[3 * i + 1])
  local kept = redis.call('HMGET', key, 'tokens', 'at')
  local left = tonumber(kept[1]) or bursts[i]
  local at = tonumber(kept[2]) or now
  tokens[i] = math.min(bursts[i], left + math.max(now - at, 0) * rates[i])
  if tokens[i] < 1 then
    if refused == 0 then refused = i end
    wait = math.max(wait, (1 - tokens[i]) / rates[i])
  end
end
-- A key lives while it differs from a fresh one: until its bucket is full again.
local function keep(i, extra)
  local full = (bursts[i] - tokens[i]) / rates[i]
  redis.call('PEXPIRE', KEYS[i], math.ceil((math.max(full, window) + extra + 1) * 1000))
end
if refused == 0 then
  for i, key in ipairs(KEYS) do
    tokens[i] = tokens[i] - 1
    redis.call('HSET', key, 'tokens', tostring(tokens[i]), 'at', tostring(now))
    keep(i, 0)
  end
  return {0, '0', 0}
end
for i, key in ipairs(KEYS) do
  if tokens[i] < 1 then
    local kept = redis.call('HMGET', key, 'refused', 'since')
    local count = tonumber(kept[1]) or 0
    local since = tonumber(kept[2]) or now
    if now - since > window then count, since = 0, now end
    count = count + 1
    redis.call('HSET', key, 'tokens', tostring(tokens[i]), 'at', tostring(now),
               'refused', tostring(count), 'since', tostring(since))
    if count >= tonumber(ARGV[3 * i + 2]) then
      redis.call('HSET', key, 'away', tostring(now + away_seconds), 'refused', '0')
      keep(i, away_seconds)
      return {2, tostring(away_seconds), i}
    end
    keep(i, 0)
  end
end
return {1, tostring(wait), refused}
"""

# KEYS[1]: the identity's hash; ARGV[1]: seconds away. Written when this daphne sends a client
# away for its frames, so that the other daphnes refuse its handshakes too.
SEND_AWAY = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('HSET', KEYS[1], 'away', tostring(now + tonumber(ARGV[1])))
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(ARGV[1]) + 1) * 1000))
return 1
"""


@dataclass(frozen=True)
class Identity:
    kind: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def scale(self) -> int:
        """How many clients it stands for: an address may be many people."""
        return setting("ADDRESS_CLIENTS") if self.kind == ADDRESS else 1

    def __str__(self) -> str:
        # Never the session's hash in full: a log line is no place for even a derived credential.
        return f"address {self.name}" if self.kind == ADDRESS else f"session {self.name[:8]}…"


def _header(headers, name: bytes) -> Optional[str]:
    values = [value for key, value in headers if key == name]
    if not values:
        return None
    return ", ".join(value.decode("latin1") if isinstance(value, bytes) else value for value in values)


def _session(headers) -> Optional[str]:
    cookie = _header(headers, b"cookie")
    if not cookie:
        return None
    jar = SimpleCookie()
    try:
        jar.load(cookie)
    except Exception:  # http.cookies raises CookieError and others on odd input; no session then
        return None
    morsel = jar.get(settings.SESSION_COOKIE_NAME)
    value = morsel.value if morsel is not None else ""
    return value if 0 < len(value) <= 4096 else None


def _address(message: dict, headers, proxy_headers: bool) -> Optional[str]:
    forwarded = _header(headers, b"x-forwarded-for") if proxy_headers else None
    if forwarded:
        address = forwarded.split(",")[-1].strip()
    else:
        client = message.get("client")
        address = str(client[0]) if client else ""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def identities(message: dict, *, proxy_headers: bool) -> Tuple[Identity, ...]:
    """The identities of a websocket.connect: its session (if it sends a cookie) and its address."""
    headers = message.get("headers") or []
    found = []
    session = _session(headers)
    if session is not None:
        found.append(Identity(SESSION, hashlib.sha256(session.encode("utf8")).hexdigest()[:32]))
    address = _address(message, headers, proxy_headers)
    if address is not None:
        found.append(Identity(ADDRESS, address))
    return tuple(found)


@dataclass(frozen=True)
class Decision:
    """What to do with a handshake: pass it on, refuse it (429), or send the client away."""

    verdict: str
    retry_after: int = 0
    identities: Tuple[Identity, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class FrameDecision:
    passed: bool
    # Tell this socket its client is over budget: once per flood, as the socket's own budget does.
    tell: bool = False
    # The identity that just went over: send it away.
    send_away: Optional[Identity] = None


PASSED = FrameDecision(passed=True)


@dataclass
class _Bucket:
    tokens: float
    at: float
    recent: Deque[float] = field(default_factory=deque)


def away_frame(seconds: int) -> dict:
    return {
        "error": "too-many-connections",
        "message": f"Too many connections or frames from this client: try again in {seconds} s.",
        "retry_after": seconds,
    }


def client_refusal_frame() -> dict:
    return {
        "error": "rate-limited",
        "message": f"Too many frames from this client's sockets: at most {setting('CLIENT_FRAME_BURST')} at once "
        f"and {setting('CLIENT_FRAME_RATE'):g} a second; frames over that were dropped.",
    }


class ClientBudgets:
    """One daphne's budgets per client, with the shared ones in Redis (see the module's docstring)."""

    def __init__(self, *, now: Callable[[], float], connection: Callable[[], Any], prefix: str, proxy_headers: bool):
        self._now = now
        self._connection = connection
        self._prefix = prefix
        self._proxy_headers = proxy_headers
        self._scripts: Dict[str, Any] = {}
        # Open sockets here, by identity key, and each socket's identities.
        self._sockets: Dict[str, Set[str]] = {}
        self._of_socket: Dict[str, Tuple[Identity, ...]] = {}
        self._frames: Dict[str, _Bucket] = {}
        # Sockets told of their client's flood, until their frames pass again.
        self._told: Set[str] = set()
        # Identity key -> when (this process's clock) it may come back.
        self._away: Dict[str, float] = {}
        # Sockets told to go away for their client's frame flood, until their disconnect.
        self._sent_away: Set[str] = set()
        # Sockets daphne answered itself: the workers never heard of them, nor may their frames.
        self._turned_away: Dict[str, float] = {}
        self._redis_refused = False

    def sizes(self) -> Dict[str, int]:
        """How much is kept, by kind: what a test checks comes back to nothing."""
        return {
            "sockets": len(self._of_socket),
            "identities": len(self._sockets),
            "frame_buckets": len(self._frames),
            "told": len(self._told),
            "away": len(self._away),
            "sent_away": len(self._sent_away),
            "turned_away": len(self._turned_away),
        }

    def redis_key(self, identity: Identity) -> str:
        return f"{self._prefix}budget:{identity.key}"

    # Handshakes

    def handshake(self, message: dict) -> Decision:
        found = identities(message, proxy_headers=self._proxy_headers)
        if not found:
            return Decision(PASS)
        now = self._now()
        for identity in found:
            left = self._away.get(identity.key, 0) - now
            if left > 0:
                return Decision(AWAY, math.ceil(left), found, f"{identity} was sent away")
        limit = setting("CLIENT_SOCKETS")
        if limit:
            for identity in found:
                if len(self._sockets.get(identity.key, ())) >= limit * identity.scale:
                    return Decision(REFUSE, SOCKETS_RETRY_AFTER, found, f"{identity} has {limit * identity.scale} open")
        if setting("HANDSHAKE_RATE") <= 0:
            return Decision(PASS, identities=found)
        try:
            status, seconds, index = self._script("handshake", HANDSHAKE)(
                keys=[self.redis_key(identity) for identity in found],
                args=self._handshake_args(found),
                client=self._connection(),
            )
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            # The connect's own send meets the same Redis, and daphne answers it 503.
            if not self._redis_refused:
                logger.warning("Redis refused the handshake budget (%s): handshakes pass unbudgeted", error)
                self._redis_refused = True
            return Decision(PASS, identities=found)
        self._redis_refused = False
        seconds = float(seconds)
        if status == 0:
            return Decision(PASS, identities=found)
        identity = found[index - 1]
        if status == 2:
            if identity.key not in self._away:
                logger.warning("%s kept handshaking past its budget: sent away for %d s", identity, seconds)
            self._away[identity.key] = now + seconds
            return Decision(AWAY, max(math.ceil(seconds), 1), found, f"{identity} was sent away")
        return Decision(REFUSE, max(math.ceil(seconds), 1), found, f"{identity} is over its handshake budget")

    def _handshake_args(self, found: Tuple[Identity, ...]) -> List[Any]:
        args: List[Any] = [setting("CLIENT_AWAY_SECONDS"), FLOOD_WINDOW_SECONDS]
        for identity in found:
            args += [
                setting("HANDSHAKE_BURST") * identity.scale,
                setting("HANDSHAKE_RATE") * identity.scale,
                setting("HANDSHAKE_AWAY_AFTER") * identity.scale,
            ]
        return args

    def _script(self, name: str, source: str):
        if name not in self._scripts:
            self._scripts[name] = self._connection().register_script(source)
        return self._scripts[name]

    def opened(self, reply_channel: str, found: Tuple[Identity, ...]) -> None:
        """The socket's websocket.connect went into Redis: it counts against its identities."""
        if not found:
            return
        self._of_socket[reply_channel] = found
        for identity in found:
            self._sockets.setdefault(identity.key, set()).add(reply_channel)

    def closed(self, reply_channel: str) -> None:
        self._told.discard(reply_channel)
        self._sent_away.discard(reply_channel)
        for identity in self._of_socket.pop(reply_channel, ()):
            open_ = self._sockets.get(identity.key)
            if open_ is not None:
                open_.discard(reply_channel)
                if not open_:
                    del self._sockets[identity.key]

    # Sockets daphne answered itself (a 429, or sent away).

    def turn_away(self, reply_channel: str) -> None:
        self._turned_away[reply_channel] = self._now()

    def turned_away(self, reply_channel: str, *, gone: bool = False) -> bool:
        if gone:
            return self._turned_away.pop(reply_channel, None) is not None
        return reply_channel in self._turned_away

    # Frames

    def frame(self, reply_channel: str) -> FrameDecision:
        found = self._of_socket.get(reply_channel)
        rate = setting("CLIENT_FRAME_RATE")
        if not found or rate <= 0:
            return PASSED
        if reply_channel in self._sent_away:
            # Closing with 4430, and told why: nothing more of it goes to the workers. (An identity
            # away for its handshakes keeps its open sockets, whoever else shares it: see above.)
            return FrameDecision(passed=False)
        now = self._now()
        burst = setting("CLIENT_FRAME_BURST")
        buckets = []
        for identity in found:
            bucket = self._frames.get(identity.key)
            if bucket is None:
                bucket = self._frames[identity.key] = _Bucket(tokens=burst * identity.scale, at=now)
            bucket.tokens = min(burst * identity.scale, bucket.tokens + (now - bucket.at) * rate * identity.scale)
            bucket.at = now
            buckets.append(bucket)
        if all(bucket.tokens >= 1 for bucket in buckets):
            for bucket in buckets:
                bucket.tokens -= 1
            if all(bucket.tokens >= 1 for bucket in buckets):
                # Back within budget with room to spare: the next flood is told again.
                self._told.discard(reply_channel)
            return PASSED
        for identity, bucket in zip(found, buckets, strict=True):
            if bucket.tokens >= 1:
                continue
            bucket.recent.append(now)
            while bucket.recent and bucket.recent[0] <= now - FLOOD_WINDOW_SECONDS:
                bucket.recent.popleft()
            if len(bucket.recent) >= setting("FLOOD_CLOSE_AFTER") * identity.scale:
                return FrameDecision(passed=False, send_away=identity)
        tell = reply_channel not in self._told
        self._told.add(reply_channel)
        return FrameDecision(passed=False, tell=tell)

    def send_away(self, identity: Identity) -> Tuple[int, List[str]]:
        """Sends the identity away from every daphne; returns for how long, and its sockets here."""
        seconds = setting("CLIENT_AWAY_SECONDS")
        self._away[identity.key] = self._now() + seconds
        bucket = self._frames.get(identity.key)
        if bucket is not None:
            bucket.recent.clear()
        try:
            self._script("send_away", SEND_AWAY)(
                keys=[self.redis_key(identity)], args=[seconds], client=self._connection()
            )
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            logger.warning("Redis refused to record %s sent away (%s): only this daphne keeps it away", identity, error)
        sockets = sorted(self._sockets.get(identity.key, ()))
        self._sent_away.update(sockets)
        return seconds, sockets

    # Forgetting

    def prune(self) -> None:
        """Drops what a new client would start with anyway: called every heartbeat."""
        now = self._now()
        self._away = {key: until for key, until in self._away.items() if until > now}
        rate, burst = setting("CLIENT_FRAME_RATE"), setting("CLIENT_FRAME_BURST")
        for key, bucket in list(self._frames.items()):
            if key in self._sockets:
                continue
            scale = setting("ADDRESS_CLIENTS") if key.startswith(ADDRESS + ":") else 1
            refilled = rate <= 0 or bucket.tokens + (now - bucket.at) * rate * scale >= burst * scale
            recent = bucket.recent and bucket.recent[-1] > now - FLOOD_WINDOW_SECONDS
            if refilled and not recent:
                del self._frames[key]
        # A socket turned away is closed within a close handshake's timeout; its disconnect
        # forgets it. One whose disconnect never came is forgotten after a minute.
        self._turned_away = {channel: since for channel, since in self._turned_away.items() if since > now - 60}
