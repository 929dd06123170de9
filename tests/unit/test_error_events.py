"""Issue 14 without a server: storm budget, bounded locals, the event worker's queue and summary."""

from __future__ import annotations

import gc
import threading
import weakref

from otel_gatewayz._errors.capture import ErrorCapture, ErrorCapturer, ErrorReport, InApp, capture_error
from otel_gatewayz._errors.storm import TRACE_FACTOR, EventBudget
from otel_gatewayz._errors.values import MAX_VALUE, render
from otel_gatewayz._sentry.errors import ErrorEventWorker, build_event
from otel_gatewayz._sentry.frames import source_context


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Drops:
    def __init__(self) -> None:
        self.counted: list[tuple[str, str]] = []

    def count(self, signal: str, reason: str, count: int = 1, **_: str) -> None:
        self.counted.append((signal, reason))


def test_budget_admits_n_per_window_and_reports_the_suppressed_once():
    clock = Clock()
    budget = EventBudget(3, 60.0, clock)
    fp = ("ProviderAPIError", "provider_error")
    assert [budget.admit(fp) for _ in range(5)] == [0, 0, 0, None, None]
    assert budget.admit(("Other",)) == 0  # fingerprints have their own budgets
    clock.now = 61.0
    assert budget.admit(fp) == 2  # the next full event carries what was suppressed
    budget.admit(fp), budget.admit(fp), budget.admit(fp)
    clock.now = 122.0
    assert budget.admit(fp) == 1  # reported once
    assert budget.admit(fp) == 0


def test_suppressed_errors_share_their_groups_summary_id_and_a_budget_of_kept_traces():
    clock = Clock()
    budget = EventBudget(1, 60.0, clock)
    fp = ("ProviderAPIError", "provider_error")
    assert budget.admit(fp) == 0
    answers = []
    for i in range(TRACE_FACTOR + 3):
        assert budget.admit(fp) is None
        answers.append(budget.suppress(fp, f"{i:032x}"))
    ids = {event_id for event_id, _ in answers}
    assert len(ids) == 1  # one summary event answers for the group
    assert [keep for _, keep in answers] == [True] * TRACE_FACTOR + [False] * 3
    [(taken_fp, summary)] = budget.take_summaries().items()
    assert (taken_fp, summary.event_id, summary.count) == (fp, ids.pop(), TRACE_FACTOR + 3)
    assert summary.trace_ids == [f"{i:032x}" for i in range(TRACE_FACTOR)]
    assert budget.take_summaries() == {}  # reported once
    clock.now = 61.0  # a new window: a new summary, and the traces' budget again
    budget.admit(fp)
    assert budget.admit(fp) is None
    event_id, keep = budget.suppress(fp, None)
    assert keep and event_id != summary.event_id


def test_a_huge_value_renders_within_bounds():
    rows = [str(i) * 10 for i in range(1_000_000)]
    rendered = render({"rows": rows, "text": "x" * 10_000_000, "nested": [[[[[[["deep"]]]]]]]})
    assert len(rendered["rows"]) == 11 and rendered["rows"][-1] == "... 999990 more"
    assert len(rendered["text"]) <= MAX_VALUE
    assert "<list of 1 items>" in str(rendered["nested"])


def test_a_value_whose_repr_fails_does_not_lose_the_event():
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert render(Broken()) == "<unrepresentable>"


def test_source_context_is_read_once_per_file_and_line():
    source_context.cache_clear()
    pre, line, post = source_context(__file__, 1)
    assert line is not None and line.startswith('"""Issue 14') and pre == () and len(post) == 5
    source_context(__file__, 1)
    assert source_context.cache_info().hits == 1


def _raise(api_key: str) -> None:
    payload = {"data": list(range(100_000))}
    raise ValueError(f"bad payload of {len(payload['data'])}")


def _unhandled(exc: BaseException, event_id: str, trace_ids: tuple[str, str] | None) -> ErrorCapture:
    """An unhandled error's capture with locals, fingerprinted by its type."""
    return capture_error(
        exc,
        ErrorReport((type(exc).__name__,), handled=False),
        event_id=event_id,
        trace_ids=trace_ids,
        in_app=InApp(),
        with_locals=True,
    )


def _captured(event_id: str = "a" * 32):
    try:
        _raise("sk-secret")
    except ValueError as exc:
        return _unhandled(exc, event_id, ("1" * 32, "2" * 16))


def test_the_event_carries_ids_fingerprint_trace_and_in_app_locals_only():
    event = build_event(_captured())
    assert event["event_id"] == "a" * 32
    assert event["contexts"]["trace"] == {"trace_id": "1" * 32, "span_id": "2" * 16}
    [value] = event["exception"]["values"]
    assert value["mechanism"] == {"type": "otel_gatewayz", "handled": False}
    frame = value["stacktrace"]["frames"][-1]
    assert frame["function"] == "_raise" and frame["in_app"] is True
    assert frame["vars"]["api_key"] == "'sk-secret'"  # scrubbed later, by before_send, as every value
    assert len(frame["vars"]["payload"]["data"]) == 11


class FakeSink:
    def __init__(self) -> None:
        self.captures: list[object] = []

    def submit(self, capture: object) -> bool:
        self.captures.append(capture)
        return True


def test_past_the_budget_an_error_gets_an_id_but_no_capture():
    sink = FakeSink()
    capturer = ErrorCapturer(sink, EventBudget(2, 60.0), InApp(), True)
    ids = []
    for _ in range(5):
        try:
            _raise("k")
        except ValueError as exc:
            ids.append(capturer.capture(exc, ErrorReport(("X",), handled=False)))
    assert len(set(ids[:2])) == 2 and len(set(ids[2:])) == 1  # past it: the group's summary id
    assert ids[2] not in ids[:2]
    assert len(sink.captures) == 2


def test_a_full_queue_drops_and_counts_without_waiting():
    release = threading.Event()
    sent: list[dict[str, object]] = []

    def send(event: dict[str, object], hint: dict[str, object]) -> str:
        release.wait(5)
        sent.append(event)
        return "id"

    drops = Drops()
    worker = ErrorEventWorker(drops, None, send=send, record_lost=lambda n: None, queue_size=2)
    results = [worker.submit(_captured(str(i) * 32)) for i in range(5)]
    assert results.count(False) >= 2
    assert drops.counted.count(("sentry", "error_queue_full")) == results.count(False)
    release.set()
    assert worker.flush(5)
    assert len(sent) == results.count(True)


def test_the_summary_carries_the_suppressed_counts_and_a_client_report():
    budget = EventBudget(1, 60.0)
    fp = ("ProviderAPIError", "provider_error")
    answered = set()
    for i in range(4):
        if budget.admit(fp) is None:
            answered.add(budget.suppress(fp, f"{i:032x}")[0])
    sent: list[dict[str, object]] = []
    lost: list[int] = []
    worker = ErrorEventWorker(Drops(), budget, send=lambda e, h: sent.append(e) or "id", record_lost=lost.append)
    assert worker.flush(1)
    [summary] = sent
    assert {summary["event_id"]} == answered  # the id the suppressed errors were answered with
    assert summary["extra"] == {
        "gatewayz_suppressed": {"ProviderAPIError / provider_error": 3},
        "gatewayz_suppressed_total": 3,
        "gatewayz_kept_trace_ids": [f"{i:032x}" for i in (1, 2, 3)],
    }
    assert lost == [3]


def test_a_summary_that_could_not_be_sent_is_sent_later_under_the_same_id():
    budget = EventBudget(1, 60.0)
    fp = ("X",)
    budget.admit(fp), budget.admit(fp)
    event_id, _ = budget.suppress(fp, None)
    results = iter([None, "id"])
    sent: list[dict[str, object]] = []
    worker = ErrorEventWorker(
        Drops(), budget, send=lambda e, h: sent.append(e) or next(results), record_lost=lambda n: None
    )
    worker.send_summary()
    worker.send_summary()
    assert [e["event_id"] for e in sent] == [event_id, event_id]
    assert budget.take_summaries() == {}


class Rows(list):  # type: ignore[type-arg]
    """A list that can be watched with a weak reference."""


class SlowRepr:
    calls = 0

    def __repr__(self) -> str:
        SlowRepr.calls += 1
        return "SlowRepr()"


def _fail_holding(rows: Rows, state: dict[str, str], slow: SlowRepr) -> None:
    raise RuntimeError("failed over the rows")


def _capture_failure(rows: Rows, state: dict[str, str], slow: SlowRepr) -> ErrorCapture:
    try:
        _fail_holding(rows, state, slow)
    except RuntimeError as exc:
        return _unhandled(exc, "b" * 32, None)
    raise AssertionError("not raised")


def test_a_capture_keeps_no_local_alive_and_shows_them_as_they_were():
    """Containers are copied (bounded) at capture: a huge local dies with its request, not its event."""
    rows, state, slow = Rows(str(i) for i in range(100_000)), {"phase": "sending"}, SlowRepr()
    watched = weakref.ref(rows)
    SlowRepr.calls = 0
    capture = _capture_failure(rows, state, slow)
    state["phase"] = "changed after the error"
    del rows
    gc.collect()  # the exception and this test's capturing frame form a cycle (its locals hold the exception)
    assert watched() is None  # the capture keeps no reference to it
    assert SlowRepr.calls == 0  # an object's own repr runs on the event worker, not the request path

    frame = build_event(capture)["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["function"] == "_fail_holding" and frame["context_line"].strip().startswith("raise RuntimeError")
    assert frame["vars"]["rows"][:2] == ["'0'", "'1'"] and frame["vars"]["rows"][-1] == "... 99990 more"
    assert frame["vars"]["state"] == {"phase": "'sending'"}
    assert frame["vars"]["slow"] == "SlowRepr()" and SlowRepr.calls == 2  # in both frames that hold it


def test_past_both_budgets_the_root_span_tells_the_trace_gate_to_drop_the_trace():
    from opentelemetry.sdk.trace import TracerProvider

    from otel_gatewayz._context.state import RequestState
    from otel_gatewayz._errors.storm import TRACE_BUDGET_ATTR

    capturer = ErrorCapturer(FakeSink(), EventBudget(1, 60.0), InApp(), False)
    tracer = TracerProvider().get_tracer("t")
    marks = []
    for _ in range(TRACE_FACTOR + 2):
        with tracer.start_as_current_span("root") as root:
            try:
                _raise("k")
            except ValueError as exc:
                capturer.capture(exc, ErrorReport(("X",), state=RequestState(root_span=root)))  # type: ignore[arg-type]
            marks.append(root.attributes.get(TRACE_BUDGET_ATTR))  # type: ignore[attr-defined]
    # The first error has a full event, the next TRACE_FACTOR keep their traces, the last is refused.
    assert marks == [None] * (TRACE_FACTOR + 1) + [False]
