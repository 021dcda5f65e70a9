"""One HTTP client: GETs a page in a loop, one request at a time, for a bounded time and count.

    python -m bench.http_load --port PORT --path /liveblog/bench/ --seconds 6 --max-requests 20000 --start-at T

Waits until time.time() reaches T (so that several clients start together), keeps its
connection open while the server allows, and prints one JSON object: ok, errors, elapsed,
latencies (seconds).
"""

import argparse
import http.client
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-requests", type=int, required=True)
    parser.add_argument("--start-at", type=float, default=0.0)
    args = parser.parse_args()

    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    delay = args.start_at - time.time()
    if delay > 0:
        time.sleep(min(delay, 10))
    ok = errors = 0
    latencies = []
    started = time.monotonic()
    deadline = started + args.seconds
    while ok + errors < args.max_requests and time.monotonic() < deadline:
        before = time.perf_counter()
        try:
            connection.request("GET", args.path)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
                latencies.append(time.perf_counter() - before)
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    elapsed = time.monotonic() - started
    connection.close()
    print(json.dumps({"ok": ok, "errors": errors, "elapsed": elapsed, "latencies": latencies}))


if __name__ == "__main__":
    main()
