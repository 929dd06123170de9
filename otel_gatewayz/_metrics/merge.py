"""Totals across worker processes: each process's series as plain data, and their sum.

A dead process contributes only its cumulative series (counters, histograms): totals never go
down when a worker dies, and its gauges drop out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

_CUMULATIVE = frozenset({"counter", "histogram", "summary"})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def to_json(families: Iterable[Metric]) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "documentation": f.documentation,
            "type": f.type,
            "unit": f.unit,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
        for f in families
    ]


def merge(snapshots: Iterable[tuple[bool, list[dict[str, Any]]]]) -> list[Metric]:
    """Sum samples with equal names and labels across processes ``(alive, families)``.

    Dead processes contribute only cumulative series (counters, histograms).
    """
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for alive, families in snapshots:
        for family in families:
            if not alive and family["type"] not in _CUMULATIVE:
                continue
            name = family["name"]
            if name not in merged:
                merged[name] = Metric(name, family["documentation"], family["type"], family["unit"])
                values[name] = {}
            bucket = values[name]
            for sample_name, labels, value in family["samples"]:
                # An empty label is no label (Prometheus's rule): the exporter backfills "" for keys
                # that other points of the same metric have, which differ between processes.
                key = (sample_name, tuple(sorted((k, v) for k, v in labels.items() if v != "")))
                bucket[key] = bucket.get(key, 0.0) + float(value)
    for name, metric in merged.items():
        for (sample_name, labels), value in values[name].items():
            metric.add_sample(sample_name, dict(labels), value)
    return list(merged.values())
