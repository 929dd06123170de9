"""The per-process measurement journal: a counter or histogram measurement is on disk once it is counted.

Snapshots are written about once a second, so a worker killed with SIGKILL would lose what it
counted since its last one. Every measurement of a cumulative instrument is therefore also
appended to an mmap'd file (as prometheus_client's multiprocess mode does): the page cache keeps
what the process stored when it dies. Each entry is 16 bytes, the value first and then the
series id with its complement, so a torn or unwritten entry reads as the end. Each series (the
instrument, its scope and attributes) is appended as one JSON line to a side file before its
first entry. A snapshot records the position it includes (taken under :attr:`Journal.lock`,
which every measurement also takes); two alternating files hold generations, so the next one
starts only once a snapshot of the current one is on disk and a crash at any point loses nothing.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram

from .._safety.log import log_once, logger
from .drops import DropCounter
from .measurements import Measurement, histogram_boundaries

SLOT = 16  # bytes per entry: a float64 value, then the uint64 commit marker
CAPACITY = 65_536  # entries per generation file (1 MiB, sparse until used)
MAX_SERIES = 10_000
LOCK_TIMEOUT = 1.0  # seconds a measurement waits for a snapshot's collect before going unjournaled
_FIRST = 1  # slot 0 is the header
_MAGIC = 0x6A7A676F  # "ogzj"
_HEADER = struct.Struct("<QQ")  # magic, generation
_VALUE = struct.Struct("<d")
_MARKER = struct.Struct("<Q")
_NO_ATTRIBUTES: frozenset[Any] = frozenset()
_MASK = 0xFFFFFFFF


def _marker(series: int) -> int:
    """The commit marker of ``series``: id + 1 in the low half, its complement in the high half."""
    tag = series + 1
    return ((~tag & _MASK) << 32) | tag


def _series_of(marker: int) -> int | None:
    tag = marker & _MASK
    if not tag or marker >> 32 != (~tag & _MASK):
        return None  # empty, or torn: the end of what was committed
    return tag - 1


def journal_paths(snapshot: Path) -> tuple[Path, Path, Path]:
    """The two generation files and the series table that go with ``snapshot``."""
    stem = snapshot.with_suffix("")
    return stem.with_suffix(".journal0"), stem.with_suffix(".journal1"), stem.with_suffix(".series")


class Journal:
    """This process's journal; :meth:`open` starts it next to the reader's snapshot file.

    Until then (or without the Prometheus reader) measurements pass straight through.
    ``drops`` counts measurements that could not be journaled (``signal="metrics"``); they are
    still counted in memory and lost only if the process is killed before its next snapshot.
    """

    def __init__(self, drops: DropCounter | None, capacity: int = CAPACITY, max_series: int = MAX_SERIES) -> None:
        self.lock = threading.RLock()
        self.resource: Mapping[str, Any] = {}
        self._drops = drops
        self._capacity = capacity
        self._max_series = max_series
        self._maps: list[mmap.mmap] = []
        self._current: mmap.mmap | None = None
        self._series_fd = -1
        self._wake: Callable[[], None] = lambda: None
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[tuple[object, frozenset[Any]], int] = {}
        self._series = 0
        self._resource_written = False
        self._generation = 1
        self._position = _FIRST
        self._used = [_FIRST, _FIRST]
        self._missed: dict[str, int] = {}

    def open(self, snapshot: Path, wake: Callable[[], None]) -> None:
        """Start a journal next to ``snapshot``; a forked child calls it again and gets its own files.

        ``wake`` asks the snapshot writer for an early round (the journal is filling up).
        """
        self.lock = threading.RLock()  # a forked child must not inherit a lock held at fork time
        for mapped in self._maps:
            mapped.close()
        if self._series_fd >= 0:
            os.close(self._series_fd)
        self._reset()
        self._wake = wake
        maps = []
        for path in journal_paths(snapshot)[:2]:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.ftruncate(fd, self._capacity * SLOT)
                maps.append(mmap.mmap(fd, self._capacity * SLOT))
            finally:
                os.close(fd)
        self._maps = maps
        _HEADER.pack_into(maps[1], 0, _MAGIC, self._generation)
        self._current = maps[self._generation % 2]
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        self._series_fd = os.open(journal_paths(snapshot)[2], flags, 0o644)

    def consume(self, measurement: Measurement, consume: Callable[[Measurement], None]) -> None:
        """Hand ``measurement`` to the SDK and journal it, as one step with respect to a snapshot.

        The hot path: one dict lookup and two ``pack_into``; JSON only for a new series.
        """
        if self._current is None:
            consume(measurement)
            return
        lock = self.lock
        if not (lock.acquire(False) or lock.acquire(timeout=LOCK_TIMEOUT)):
            consume(measurement)
            self._miss("journal_busy")
            return
        try:
            consume(measurement)
            try:
                attributes = measurement.attributes
                key = (measurement.instrument, frozenset(attributes.items()) if attributes else _NO_ATTRIBUTES)
                marker = self._ids.get(key)
                if marker is None:
                    marker = self._register(measurement, key)
                position = self._position
                if not marker:
                    pass
                elif position >= self._capacity:
                    self._miss("journal_full")
                else:
                    offset = position * SLOT
                    _VALUE.pack_into(self._current, offset, measurement.value)
                    _MARKER.pack_into(self._current, offset + 8, marker)  # written last: commits the entry
                    self._position = position + 1
                    if position == self._capacity // 2:
                        self._wake()
            except Exception:  # noqa: BLE001 - the journal must never fail a measurement
                log_once("journal-append", logging.ERROR, "otel_gatewayz: the metrics journal failed", exc_info=True)
        finally:
            lock.release()

    def _register(self, measurement: Measurement, key: tuple[object, frozenset[Any]]) -> int:
        """A new series: its table line goes to disk before its first entry. 0: not journaled."""
        instrument = measurement.instrument
        if isinstance(instrument, Counter):
            kind, boundaries = "counter", None
        elif isinstance(instrument, Histogram):
            kind, boundaries = "histogram", list(histogram_boundaries(instrument))
        else:  # up-down counters and gauges of a dead process drop out of the totals anyway
            if len(self._ids) < 4 * self._max_series:
                self._ids[key] = 0
            return 0
        if self._series >= self._max_series:
            self._miss("journal_series_full")
            return 0
        scope = instrument.instrumentation_scope
        line = {
            "id": self._series,
            "name": instrument.name,
            "kind": kind,
            "unit": instrument.unit,
            "description": instrument.description,
            "boundaries": boundaries,
            "scope": [scope.name, scope.version, scope.schema_url, dict(scope.attributes or {})],
            "attributes": dict(measurement.attributes or {}),
        }
        if not self._resource_written:
            self._write_line({"resource": dict(self.resource)})
            self._resource_written = True
        self._write_line(line)
        marker = _marker(self._series)
        self._series += 1
        self._ids[key] = marker
        return marker

    def _write_line(self, line: dict[str, Any]) -> None:
        os.write(self._series_fd, (json.dumps(line, default=str) + "\n").encode())

    def _miss(self, reason: str) -> None:
        self._missed[reason] = self._missed.get(reason, 0) + 1
        self._wake()

    def mark(self) -> list[int] | None:
        """``[generation, position]`` of the next entry: call with :attr:`lock` held, right after collecting."""
        return [self._generation, self._position] if self._current is not None else None

    def rotate(self) -> None:
        """Start the next generation in the other file: only once a snapshot with the current mark is on disk.

        The other file holds the generation before the current one, which that snapshot covers.
        """
        if self._current is None or self._position == _FIRST:
            return
        following = self._generation + 1
        other = self._maps[following % 2]
        used = self._used[following % 2]
        other[_FIRST * SLOT : used * SLOT] = bytes((used - _FIRST) * SLOT)
        _HEADER.pack_into(other, 0, _MAGIC, following)  # after the zeroing: a reader trusts it then
        with self.lock:
            self._used[self._generation % 2] = self._position
            self._generation, self._position, self._current = following, _FIRST, other

    def count_missed(self) -> None:
        """Count what could not be journaled (off the request path: counting records a measurement)."""
        with self.lock:
            missed, self._missed = self._missed, {}
        for reason, count in missed.items():
            if self._drops is not None:
                self._drops.count(
                    "metrics",
                    reason,
                    count,
                    what="metric measurements were not journaled (lost if the process is killed before its snapshot)",
                )


@dataclass(frozen=True)
class Series:
    """One journaled series, as the dead process's table describes it."""

    name: str
    kind: str
    unit: str
    description: str
    boundaries: tuple[float, ...] | None
    scope: tuple[str, str | None, str | None, dict[str, Any]]
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Deltas:
    """What a dead process counted after its last snapshot."""

    resource: dict[str, Any]
    series: dict[int, Series]
    entries: list[tuple[int, float]]


def _entries(data: bytes, generation: int, start: int) -> list[tuple[int, float]] | None:
    """The committed entries of one generation file from slot ``start``; None if it holds another generation."""
    if len(data) < SLOT or _HEADER.unpack_from(data, 0) != (_MAGIC, generation):
        return None
    found = []
    for offset in range(start * SLOT, len(data) - SLOT + 1, SLOT):
        (value,) = _VALUE.unpack_from(data, offset)
        (marker,) = _MARKER.unpack_from(data, offset + 8)
        series = _series_of(marker)
        if series is None:
            break
        found.append((series, value))
    return found


def read_deltas(snapshot: Path, mark: list[int]) -> Deltas:
    """The entries after ``mark`` of a dead process: its generation from there, then the next one."""
    generation, position = mark
    files = journal_paths(snapshot)
    entries = _entries(files[generation % 2].read_bytes(), generation, position)
    if entries is None:  # not the snapshot's journal any more: replaying it could count twice
        logger.warning("otel_gatewayz: %s does not hold generation %s; ignored", files[generation % 2], generation)
        return Deltas({}, {}, [])
    following = _entries(files[(generation + 1) % 2].read_bytes(), generation + 1, _FIRST)
    entries += following or []
    resource: dict[str, Any] = {}
    series: dict[int, Series] = {}
    for raw in files[2].read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # a line cut by the kill: no entry uses it
        if "resource" in line:
            resource = line["resource"]
            continue
        boundaries = line["boundaries"]
        series[line["id"]] = Series(
            line["name"],
            line["kind"],
            line["unit"],
            line["description"],
            None if boundaries is None else tuple(boundaries),
            (line["scope"][0], line["scope"][1], line["scope"][2], line["scope"][3]),
            line["attributes"],
        )
    return Deltas(resource, series, [entry for entry in entries if entry[0] in series])
