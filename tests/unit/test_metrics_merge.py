"""Totals across worker processes: counters of dead workers stay, their gauges go."""

from __future__ import annotations

from otel_gatewayz._metrics.merge import merge


def family(name, kind, samples):
    return {"name": name, "documentation": "d", "type": kind, "unit": "", "samples": samples}


def test_merge_sums_equal_series_and_keeps_dead_workers_counters_only():
    live = [family("req", "counter", [["req_total", {"route": "/a"}, 3.0]]), family("up", "gauge", [["up", {}, 1.0]])]
    dead = [
        family("req", "counter", [["req_total", {"route": "/a"}, 2.0], ["req_total", {"route": "/b"}, 5.0]]),
        family("up", "gauge", [["up", {}, 1.0]]),
    ]

    merged = {m.name: m for m in merge([(True, live), (False, dead)])}

    totals = {tuple(sorted(s.labels.items())): s.value for s in merged["req"].samples}
    assert totals == {(("route", "/a"),): 5.0, (("route", "/b"),): 5.0}
    assert [s.value for s in merged["up"].samples] == [1.0]  # the dead worker's gauge dropped out


def test_merge_of_histograms_sums_buckets():
    a = [family("lat", "histogram", [["lat_bucket", {"le": "1.0"}, 1.0], ["lat_count", {}, 1.0]])]
    b = [family("lat", "histogram", [["lat_bucket", {"le": "1.0"}, 2.0], ["lat_count", {}, 2.0]])]
    [merged] = merge([(True, a), (False, b)])
    assert {s.name: s.value for s in merged.samples} == {"lat_bucket": 3.0, "lat_count": 3.0}


def test_an_empty_label_is_no_label_across_processes():
    """The exporter backfills "" for keys other points have: one worker's errors must not split the series."""
    with_errors = [family("dur", "histogram", [["dur_count", {"model": "m", "error_type": ""}, 2.0]])]
    without = [family("dur", "histogram", [["dur_count", {"model": "m"}, 3.0]])]
    [merged] = merge([(True, with_errors), (False, without)])
    assert [(s.labels, s.value) for s in merged.samples] == [({"model": "m"}, 5.0)]
