"""Is this environment the one the kit expects? `python -m channels1_kit.install_check`.

On Django 3.0+, channels 1.1.8, daphne 1.4.2 and asgi_redis 1.4.3 are installed without their
dependencies (`pip install --no-deps`), since each declares asgiref~=1.1 and Django needs asgiref 3;
the kit's loader supplies what they import from asgiref 1. `pip check` then reports exactly those
three requirements, and anything else it reports is a real hole: a dependency left out of a
hand-kept list installed with --no-deps fails here, at install time, instead of as an ImportError
in a running daphne. On Django 2.2 (asgiref 1) the asgiref lines go. On every Django, asgi_redis's
own Redis client and serializer (redis~=2.10.6, msgpack-python) are left out on purpose too: the
fan-out layer makes every Redis call and every (de)serialization itself, on current redis-py and
msgpack, and nothing of asgi_redis that needs the old ones runs. Exit status 1, with what pip said,
when the environment has anything else.
"""

import importlib.metadata
import subprocess
import sys
from typing import Set, Tuple

# What each ASGI 1 package declares of asgiref, as released.
ASGI1_ASGIREF_REQUIREMENTS = {"channels": "~=1.1", "daphne": "~=1.1", "asgi-redis": "~=1.1.2"}


def accepted_conflicts() -> Set[str]:
    """The lines of `pip check` that are the conflicts we chose (no asgiref ones on asgiref 1)."""
    asgi_redis = importlib.metadata.version("asgi-redis")
    accepted = {
        # asgi_redis's serializer; the layer serializes with msgpack >= 1.0 (the same bytes).
        f"asgi-redis {asgi_redis} requires msgpack-python, which is not installed.",
    }
    try:
        accepted.add(
            f"asgi-redis {asgi_redis} has requirement redis~=2.10.6, but you have redis "
            f"{importlib.metadata.version('redis')}."
        )
    except importlib.metadata.PackageNotFoundError:
        pass  # Then pip check says so, and it is not accepted.
    asgiref = importlib.metadata.version("asgiref")
    if asgiref.startswith("1."):
        return accepted
    return accepted | {
        f"{name} {importlib.metadata.version(name)} has requirement asgiref{spec}, but you have asgiref {asgiref}."
        for name, spec in ASGI1_ASGIREF_REQUIREMENTS.items()
    }


def pip_check() -> Tuple[int, Set[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120, check=False
    )
    return result.returncode, set(result.stdout.strip().splitlines())


def unexpected() -> Set[str]:
    """What `pip check` reports beyond the chosen conflicts."""
    _, reported = pip_check()
    return reported - accepted_conflicts() - {"No broken requirements found."}


def main() -> None:
    problems = unexpected()
    if problems:
        sys.exit(
            "The environment lacks what its packages require (beyond the ASGI 1 packages' asgiref~=1.1,"
            " which the kit stands in for, and asgi_redis's redis~=2.10.6 and msgpack-python, which the"
            " fan-out layer replaces):\n  " + "\n  ".join(sorted(problems))
        )
    print("channels1_kit: the environment has everything its packages require, but the chosen conflicts.")


if __name__ == "__main__":
    main()
