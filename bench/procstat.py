"""CPU time and memory of server processes (tools.processes reads them through psutil)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tools.processes import cpu_seconds, rss_bytes

__all__ = ["cpu_by_kind", "cpu_delta", "cpu_seconds", "rss_bytes"]


def cpu_by_kind(pids: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """CPU seconds so far, summed per kind of process ({"daphne": [...], "redis": [...]})."""
    return {kind: sum(cpu_seconds(pid) for pid in group) for kind, group in pids.items()}


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {kind: after[kind] - before[kind] for kind in before}
