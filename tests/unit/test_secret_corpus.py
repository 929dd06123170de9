"""The generated corpus through the Scrubber: every format, planted everywhere a gateway puts text.

The e2e leak test plants the same corpus in a running app and scans every byte that leaves;
this one keeps the scrubber itself honest and fast to debug (one failure names the format and
the placement).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from otel_gatewayz._privacy.scrubber import MARKER, Scrubber
from tests.secret_corpus import FORMATS, Sample, benign_samples, secret_samples

SCRUBBER = Scrubber()
SAMPLES = secret_samples()
SHAPED = [s for s in SAMPLES if not s.keyed_only]
SECRET_KEYS = (
    "stripe_key",
    "azureOpenAIKey",
    "X-Goog-Api-Key",
    "creds",
    "private_key",
    "client_secret",
    "aws_secret_access_key",
    "x-amz-security-token",
    "api-key",
    "OPENAI_API_KEY",
    "HF_TOKEN",
)


def _leaks(secret: str, output: str) -> list[str]:
    """Pieces of ``secret`` (whole, or any 8 characters of it, raw or URL-encoded) in ``output``."""
    found = []
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        if form in output:
            found.append(form)
            continue
        found += [form[i : i + 8] for i in range(len(form) - 7) if form[i : i + 8] in output][:1]
    return found


def _text_placements(text: str) -> dict[str, str]:
    one_line = text.replace("\n", "\\n")
    return {
        "free text": f"upstream rejected the request: {text} (retry later)",
        "exception message": f'ProviderAPIError: 401 {{"error": {{"message": "Incorrect key: {one_line}"}}}}',
        "log line": f"2026-12-01 19:52:01,123 ERROR gateway: provider call failed key={text!r} model=gpt-4o",
        "url path": f"/v1/keys/{quote(text, safe='')}/usage",
        "raw url path": f"GET /v1/keys/{one_line}/usage HTTP/1.1",
        "url query": f"https://gw.example.com/v1/chat?note={quote(text)}&model=gpt-4o",
        "url-encoded form": f"a=1&note={quote_plus(text)}&b=2",
        "json in text": f"body={json.dumps({'detail': text, 'model': 'gpt-4o'})}",
        "repr": f"Settings(model='gpt-4o', note={text!r}, retries=3)",
        "dict repr": repr({"detail": text, "n": 1}),
    }


def _placements(sample: Sample) -> dict[str, Callable[[], Any]]:
    """Every way the test plants ``sample``, by name."""
    runs: dict[str, Callable[[], Any]] = {}
    if not sample.keyed_only:
        for where, planted in _text_placements(sample.text).items():
            runs[where] = lambda p=planted: SCRUBBER.scrub_text(p)
        runs["JSON string"] = lambda: SCRUBBER.scrub(json.dumps({"detail": sample.text}))
        runs["benign key"] = lambda: SCRUBBER.scrub({"detail": sample.text, "message": [sample.text]})
        runs["span attribute"] = lambda: SCRUBBER.scrub({"gen_ai.request.model": sample.text})
    runs["secret keys"] = lambda: SCRUBBER.scrub({k: sample.secret for k in SECRET_KEYS})
    if any(ch.isdigit() for ch in sample.secret) and sample.format != "keyed:password":
        # Under an ambiguous key only random-looking values go (see EntropyCheck); a value with
        # no digit (Cloudant's 24 letters) is never judged random.
        runs["ambiguous key"] = lambda: SCRUBBER.scrub({"azure_openai": sample.secret})
    for key in ("stripe_key", "creds", "X-Goog-Api-Key"):
        runs[f"form body {key}"] = lambda k=key: SCRUBBER.scrub_text(f"a=1&{k}={quote_plus(sample.secret)}&b=2")
        runs[f"repr {key}"] = lambda k=key: SCRUBBER.scrub_text(f"Settings({k}={sample.secret!r}, model='gpt-4o')")
        runs[f"header {key}"] = lambda k=key: SCRUBBER.scrub_text(f"{k}: {sample.secret}")
    runs["argv"] = lambda: SCRUBBER.scrub(
        ["uvicorn", "app:app", "--ssl-keyfile-password", sample.secret, f"--api-key={sample.secret}"]
    )
    return runs


@pytest.mark.parametrize("sample", SAMPLES, ids=[f"{s.format}-{i}" for i, s in enumerate(SAMPLES)])
def test_no_corpus_secret_survives(sample: Sample) -> None:
    failures = []
    for where, run in _placements(sample).items():
        out = run()
        text = out if isinstance(out, str) else json.dumps(out)
        if _leaks(sample.secret, text) or MARKER not in text:
            failures.append(f"{where}: {text[:200]}")
    assert not failures, f"{sample.format} leaked:\n" + "\n".join(failures)


def test_every_rule_has_two_examples_that_it_matches() -> None:
    by_format: dict[str, list[Sample]] = {}
    for sample in SAMPLES:
        by_format.setdefault(sample.format, []).append(sample)
    for rule in SCRUBBER.rules:
        examples = by_format.get(rule.name, [])
        assert len(examples) >= 2, f"no corpus generator for {rule.name}: add one to tests/secret_corpus.py"
        for sample in examples:
            assert rule.pattern.search(sample.text), f"{rule.name} does not match its own example {sample.text!r}"
    assert set(FORMATS) >= {rule.name for rule in SCRUBBER.rules}


def test_rule_set_comes_from_detect_secrets_plus_supplement() -> None:
    names = [rule.name for rule in SCRUBBER.rules]
    assert SCRUBBER.rules_source.startswith("detect-secrets ")
    assert sum(n.startswith("detect-secrets:") for n in names) >= 40
    assert any(n.startswith("detect-secrets:StripeDetector") for n in names)
    assert not any("IPPublicDetector" in n or "KeywordDetector" in n for n in names)


def test_corpus_is_deterministic_and_synthetic() -> None:
    assert secret_samples(7) == secret_samples(7)
    assert secret_samples(7) != secret_samples(8)
    assert len({s.secret for s in SAMPLES}) == len(SAMPLES)


BENIGN = benign_samples()


@pytest.mark.parametrize(("kind", "value"), BENIGN, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BENIGN)])
def test_benign_values_are_not_redacted(kind: str, value: str) -> None:
    assert SCRUBBER.scrub_text(value) == value
    assert SCRUBBER.scrub_text(f"GET /v1/chat {value} 200") == f"GET /v1/chat {value} 200"
    assert SCRUBBER.scrub({"detail": value, "trace_id": value, "gen_ai.request.model": value}) == {
        "detail": value,
        "trace_id": value,
        "gen_ai.request.model": value,
    }
