"""`make bench`: the site's real processes driven by real WebSocket and HTTP clients.

`python -m bench.run` starts the stack (tools/site_stack.py) once with the project's
layer and once with stock asgi_redis, then a Channels 4 peer (bench/peer/), measures
fan-out, echo, liveblog, plain pages, CPU and memory, and writes docs/benchmarks.md with
its plots in docs/benchmarks/. `--quick` runs small sizes for development.
"""
