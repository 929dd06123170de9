"""The measurement journal: what a killed process counted after its snapshot is replayed exactly, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from otel_gatewayz._metrics.journal import SLOT, Journal, journal_paths, read_deltas
from otel_gatewayz._metrics.measurements import install_measurement_hook
from otel_gatewayz._metrics.merge import merge, to_json
from otel_gatewayz._metrics.prometheus import RESOURCE_LABELS, translate
from otel_gatewayz._metrics.replay import replay

RESOURCE = {"service.name": "gw", "service.version": "abc123", "deployment.environment.name": "staging"}


class Drops:
    def __init__(self) -> None:
        self.counted: dict[tuple[str, str], int] = {}

    def count(self, signal: str, reason: str, count: int = 1, **_: Any) -> None:
        self.counted[(signal, reason)] = self.counted.get((signal, reason), 0) + count


class Process:
    """A process's SDK with the journal hooked in, read back the way the serving process reads it."""

    def __init__(self, tmp_path: Path, **journal_args: Any) -> None:
        self.file = tmp_path / "4242-abcdef01.json"
        self.drops = Drops()
        self.wakes = 0
        self.journal = Journal(self.drops, **journal_args)
        self.journal.open(self.file, self._wake)
        self.registry = CollectorRegistry()
        reader = PrometheusMetricReader(
            resource_attribute_filter=lambda key: key in RESOURCE_LABELS, registry=self.registry
        )
        self.provider = MeterProvider(metric_readers=[reader], resource=Resource.create(RESOURCE))
        install_measurement_hook(self.provider, lambda measurement: measurement, self.journal)
        self.written = {"families": [], "journal": self.journal.mark()}  # the first snapshot

    def _wake(self) -> None:
        self.wakes += 1

    def exported(self) -> list[dict[str, Any]]:
        """What the SDK and the exporter serve now (cumulative families only)."""
        with self.journal.lock:
            families = to_json(self.registry.collect())
        return [f for f in families if f["type"] in ("counter", "histogram")]

    def snapshot(self) -> None:
        """A snapshot written to disk with its mark; the journal then moves to its next generation."""
        with self.journal.lock:
            families = to_json(self.registry.collect())
            mark = self.journal.mark()
        self.written = {"families": families, "journal": mark}
        self.journal.rotate()

    def after_kill(self) -> list[dict[str, Any]]:
        """What the serving process totals for this process once it is dead: snapshot + journal."""
        deltas = to_json(replay(read_deltas(self.file, self.written["journal"]), translate))
        return to_json(merge([(False, self.written["families"]), (False, deltas)]))


def samples(families: list[dict[str, Any]]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    return {
        (f["name"], s[0], tuple(sorted((k, v) for k, v in s[1].items() if v != ""))): s[2]
        for f in families
        if f["type"] in ("counter", "histogram")
        for s in f["samples"]
    }


def record_traffic(process: Process, start: int, n: int) -> None:
    sdk = process.provider.get_meter("opentelemetry.instrumentation.asgi", "0.66b2", "https://opentelemetry.io/s")
    ours = process.provider.get_meter("otel_gatewayz", attributes={"tier": 1, "beta": True})
    requests = sdk.create_histogram(
        "http.server.request.duration", unit="s", explicit_bucket_boundaries_advisory=[0.1, 1]
    )
    sizes = sdk.create_histogram("http.server.response.body.size", unit="By")  # the SDK's default buckets
    errors = ours.create_counter("gatewayz.errors", unit="{error}", description="Errors.")
    active = sdk.create_up_down_counter("http.server.active_requests")  # not journaled: drops out when dead
    for i in range(start, start + n):
        requests.record(i % 7 * 0.25, {"http.route": f"/r{i % 3}", "http.response.status_code": 200})
        sizes.record(i * 10, {"http.route": "/r", "ok": i % 2 == 0, "tags": ("a", "b")})
        errors.add(1 + i % 2, {"error.category": "provider"} if i % 4 else {"error.category": "x", "error.type": "E"})
        active.add(1)


def test_a_replay_is_what_the_sdk_would_have_exported(tmp_path):
    process = Process(tmp_path)

    record_traffic(process, 0, 300)  # then SIGKILL: no snapshot after the first (empty) one

    assert samples(process.after_kill()) == pytest.approx(samples(process.exported()))
    replayed = {f["name"]: f for f in to_json(replay(read_deltas(process.file, [1, 1]), translate))}
    exported = {f["name"]: f for f in process.exported()}
    assert set(replayed) == set(exported)
    for name, family in exported.items():  # same families: name, type, unit, help
        assert {k: v for k, v in replayed[name].items() if k != "samples"} == {
            k: v for k, v in family.items() if k != "samples"
        }


def test_generations_alternate_and_a_kill_at_any_point_loses_nothing(tmp_path):
    process = Process(tmp_path)
    record_traffic(process, 0, 50)
    process.snapshot()  # generation 2 starts in the other file
    record_traffic(process, 50, 50)
    assert samples(process.after_kill()) == pytest.approx(samples(process.exported()))

    stale = process.written
    process.snapshot()  # generation 3 reuses generation 1's file, which the last snapshot covers
    record_traffic(process, 100, 50)
    assert process.journal.mark()[0] == 3
    assert samples(process.after_kill()) == pytest.approx(samples(process.exported()))

    # A snapshot two generations old no longer matches the files: nothing is replayed rather than twice.
    assert read_deltas(process.file, stale["journal"]).entries == []


def test_a_kill_after_collecting_but_before_the_snapshot_is_written_loses_nothing(tmp_path):
    process = Process(tmp_path)
    record_traffic(process, 0, 40)
    process.snapshot()
    record_traffic(process, 40, 40)
    with process.journal.lock:  # the next snapshot was collected but never reached the disk
        process.registry.collect()
    record_traffic(process, 80, 40)

    assert samples(process.after_kill()) == pytest.approx(samples(process.exported()))


def test_a_torn_entry_ends_the_journal(tmp_path):
    process = Process(tmp_path)
    counter = process.provider.get_meter("t").create_counter("c")
    for _ in range(5):
        counter.add(1)
    generation_file = journal_paths(process.file)[1]
    data = bytearray(generation_file.read_bytes())
    fourth = 4 * SLOT  # slot 0 is the header: entries 1..5
    data[fourth + 12 : fourth + 16] = bytes(4)  # the commit marker half written when the kill came
    generation_file.write_bytes(bytes(data))

    deltas = read_deltas(process.file, [1, 1])

    assert [value for _, value in deltas.entries] == [1.0, 1.0, 1.0]


def test_a_full_journal_counts_and_wakes_the_writer_and_never_raises(tmp_path):
    process = Process(tmp_path, capacity=9)  # 8 entries
    counter = process.provider.get_meter("t").create_counter("c")
    for _ in range(12):
        counter.add(1)
    assert process.wakes >= 1
    process.snapshot()
    process.journal.count_missed()
    assert process.drops.counted == {("metrics", "journal_full"): 4}
    counter.add(1)
    assert samples(process.after_kill()) == samples(process.exported())  # 12 in the snapshot, 1 journaled


def test_the_series_table_is_bounded(tmp_path):
    process = Process(tmp_path, max_series=2)
    counter = process.provider.get_meter("t").create_counter("c")
    for i in range(3):
        counter.add(1, {"n": i})
    process.journal.count_missed()
    assert process.drops.counted == {("metrics", "journal_series_full"): 1}
    lines = [json.loads(line) for line in journal_paths(process.file)[2].read_text().splitlines()]
    assert lines[0] == {"resource": {**Resource.create(RESOURCE).attributes}}
    assert [line["attributes"] for line in lines[1:]] == [{"n": 0}, {"n": 1}]


def test_a_second_open_starts_new_files(tmp_path):
    """A forked child reopens the journal next to its own snapshot: nothing of the parent's is reused."""
    process = Process(tmp_path)
    counter = process.provider.get_meter("t").create_counter("c")
    counter.add(1)
    child = tmp_path / "4343-abcdef02.json"
    process.journal.open(child, lambda: None)
    counter.add(2)

    assert [v for _, v in read_deltas(process.file, [1, 1]).entries] == [1.0]
    assert [v for _, v in read_deltas(child, [1, 1]).entries] == [2.0]
