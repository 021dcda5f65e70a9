"""Saves liveblog posts through the ORM on request, as the admin would: one per line of stdin.

    python -m bench.liveblog_driver SLUG TAG   (with the stack's environment)

Reads a number per line, calls liveblog.services.post_create with the body
"bench TAG NUMBER", and prints `POSTED {"number", "started", "saved"}` (time.time() before
and after the call). Exits at the end of its input.
"""

import json
import os
import sys
import time

import django


def main() -> None:
    slug, tag = sys.argv[1], sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.test")
    django.setup()
    from liveblog.models import Liveblog
    from liveblog.services import post_create

    liveblog = Liveblog.objects.get(slug=slug)
    for line in sys.stdin:
        number = int(line)
        started = time.time()
        post_create(liveblog=liveblog, body=f"bench {tag} {number}")
        saved = time.time()
        print("POSTED " + json.dumps({"number": number, "started": started, "saved": saved}), flush=True)


if __name__ == "__main__":
    main()
