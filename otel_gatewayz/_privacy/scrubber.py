"""One redaction engine for every signal that leaves the process.

Keys that name a secret have their whole value replaced; secrets recognised by their shape
(Bearer tokens, provider keys, JWTs, cloud keys, card numbers, ``password=...`` pairs, URL
userinfo and sensitive query parameters) are replaced inside any string. The marker keeps the
key and never echoes any part of the secret. What was redacted is recorded as paths and a
count, never values.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

MARKER = "[REDACTED]"

_BUILTIN_KEYS = (
    r"pass(word|wd|phrase)",
    r"secret",
    r"api[-_ .]?key",
    r"^x-api-key$",
    r"authori[sz]ation",
    r"^(proxy-)?auth$",
    r"cookie",
    r"^session$",
    r"^session[-_]?(id|key|token)$",
    r"sessionid",
    r"credential",
    r"private[-_ .]?key",
    r"jwt",
    r"csrf",
    r"xsrf",
    r"(^|[-_ .])token$",
    r"bearer",
    r"^(access|refresh|id|auth)[-_ .]?token",
    r"^(key|access[-_]?key|signature|sig)$",
    r"^dsn$",
)

# Key ids are identifiers, not secrets; the spec shows them on the Sentry user.
_BUILTIN_SAFE_KEYS = (r"^(api[-_ ]?)?key[-_ ]?id$",)

_CARD = r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"
# name -> (pattern, literals one of which must occur, in the lower-cased text, for a match).
_VALUE_PATTERNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bearer": (r"\b(?i:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}", ("bearer", "basic", "token")),
    "provider_key": (r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}", ("sk-", "pk-", "rk-")),
    "jwt": (r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", ("eyj",)),
    "aws_key": (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", ("akia", "asia")),
    "github_token": (r"\bgh[pousr]_[A-Za-z0-9]{20,}", ("gh",)),
    "slack_token": (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", ("xox",)),
    "google_key": (r"\bAIza[0-9A-Za-z_-]{35}", ("aiza",)),
}
_DIGIT_RUN = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d")
_CARD_RE = re.compile(_CARD)
# ``password=hunter2``, ``"api_key": "abc"``, ``token: abc`` in free text.
_PAIR = re.compile(
    r"(?i)(?P<key>[\"']?\b(?:[a-z0-9]*[-_])?(?:password|passwd|secret|api[-_]?key|apikey|"
    r"access[-_]?token|refresh[-_]?token|auth[-_]?token|token|client[-_]?secret|private[-_]?key|"
    r"credentials?|session(?:[-_]?id)?|cookie)[\"']?\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s&,;\"'}]+)"
)
_PAIR_LITERALS = ("pass", "secret", "key", "token", "credential", "session", "cookie")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s?#]+)@")
_QUERY_PARAM = re.compile(r"(?P<sep>^|[?&;])(?P<name>[^=&#\s?;]+)=(?P<value>[^&#\s;]*)")
_MAX_JSON_SCAN = 65_536
_CACHE_SIZE = 4096
_CACHE_MAX_TEXT = 512


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass
class ScrubReport:
    """What a scrub redacted: paths (``a.b[2]``) and how many values."""

    paths: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.paths)

    def add(self, path: str) -> None:
        if len(self.paths) < 100:
            self.paths.append(path or "$")


class Scrubber:
    """Redacts secrets by key name and by value shape; safe for any JSON-like value."""

    def __init__(self, extra_keys: Iterable[str] = (), safe_keys: Iterable[str] = ()) -> None:
        self._key = re.compile("|".join(f"(?:{p})" for p in (*_BUILTIN_KEYS, *extra_keys)), re.IGNORECASE)
        safe = (*_BUILTIN_SAFE_KEYS, *safe_keys)
        self._safe = re.compile("|".join(f"(?:{p})" for p in safe), re.IGNORECASE)
        self._values = [(name, re.compile(p), literals) for name, (p, literals) in _VALUE_PATTERNS.items()]
        # Telemetry repeats itself (methods, routes, hosts, attribute names): remember verdicts.
        self._clean_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(self._clean)
        self.is_secret_key = functools.lru_cache(maxsize=_CACHE_SIZE)(self._is_secret_key)  # type: ignore[method-assign]

    def is_secret_key(self, key: str) -> bool:
        """True when a value stored under ``key`` is a secret (cached :meth:`_is_secret_key`)."""
        return self._is_secret_key(key)

    def _is_secret_key(self, key: str) -> bool:
        """True when a value stored under ``key`` is a secret whatever it looks like.

        Dotted attribute names are judged by their last part, so
        ``http.request.header.authorization`` is a secret and ``gen_ai.usage.input_tokens`` is not.
        """
        name = key.rsplit(".", 1)[-1]
        if self._safe.search(name):
            return False
        return self._key.search(name) is not None

    def scrub_text(self, text: str, report: ScrubReport | None = None, path: str = "") -> str:
        """Redact secrets inside free text, URLs included."""
        out, hit = self._clean_cached(text) if len(text) <= _CACHE_MAX_TEXT else self._clean(text)
        if hit and report is not None:
            report.add(path)
        return out

    def _clean(self, text: str) -> tuple[str, bool]:
        hits = 0

        def bearer_sub(m: re.Match[str]) -> str:
            nonlocal hits
            hits += 1
            return m.group(0).split(None, 1)[0] + " " + MARKER

        def value_sub(m: re.Match[str]) -> str:
            nonlocal hits
            hits += 1
            return MARKER

        def card_sub(m: re.Match[str]) -> str:
            nonlocal hits
            if not _luhn(re.sub(r"\D", "", m.group(0))):
                return m.group(0)
            hits += 1
            return MARKER

        def pair_sub(m: re.Match[str]) -> str:
            nonlocal hits
            if m.group("value") == MARKER:
                return m.group(0)
            hits += 1
            return m.group("key") + MARKER

        def userinfo_sub(m: re.Match[str]) -> str:
            nonlocal hits
            hits += 1
            return m.group("scheme") + MARKER + "@"

        def query_sub(m: re.Match[str]) -> str:
            nonlocal hits
            if not m.group("value") or m.group("value") == MARKER or not self.is_secret_key(m.group("name")):
                return m.group(0)
            hits += 1
            return f"{m.group('sep')}{m.group('name')}={MARKER}"

        if "%" in text or "+" in text:
            # Secrets hide behind URL encoding (``token%3Dabc``): judge the decoded text.
            decoded = unquote_plus(text)
            if decoded != text and self._clean(decoded)[1]:
                text = decoded
        # Each shape runs only where its literal prefix occurs: long texts stay cheap.
        lowered = text.lower()
        out = text
        for name, pattern, literals in self._values:
            if any(literal in lowered for literal in literals):
                out = pattern.sub(bearer_sub if name == "bearer" else value_sub, out)
        if _DIGIT_RUN.search(out):
            out = _CARD_RE.sub(card_sub, out)
        if ("=" in out or ":" in out) and any(literal in lowered for literal in _PAIR_LITERALS):
            out = _PAIR.sub(pair_sub, out)
        if "@" in out:
            out = _URL_USERINFO.sub(userinfo_sub, out)
        if "=" in out:
            out = _QUERY_PARAM.sub(query_sub, out)
        return out, hits > 0

    def scrub(self, value: Any, report: ScrubReport | None = None, path: str = "", depth: int = 0) -> Any:
        """Return a scrubbed copy of ``value`` (dicts, lists, tuples, JSON strings, text)."""
        if depth > 20:
            return value
        if isinstance(value, str):
            stripped = value.lstrip()
            if stripped[:1] in ("{", "[") and len(value) <= _MAX_JSON_SCAN:
                try:
                    parsed = json.loads(value)
                except ValueError:
                    pass
                else:
                    if isinstance(parsed, (dict, list)):
                        cleaned = self.scrub(parsed, report, path, depth + 1)
                        return value if cleaned == parsed else json.dumps(cleaned)
            return self.scrub_text(value, report, path)
        if isinstance(value, Mapping):
            result: dict[Any, Any] = {}
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if (
                    isinstance(key, str)
                    and item not in (None, "", MARKER)
                    and not isinstance(item, Mapping)
                    and self.is_secret_key(key)
                ):
                    result[key] = [MARKER] * len(item) if isinstance(item, (list, tuple)) else MARKER
                    if isinstance(item, tuple):
                        result[key] = tuple(result[key])
                    if report is not None:
                        report.add(child)
                    continue
                result[key] = self.scrub(item, report, child, depth + 1)
            return result
        if isinstance(value, (list, tuple)):
            items = [self.scrub(item, report, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def scrub_pairs(self, pairs: Iterable[tuple[str, Any]], report: ScrubReport | None = None) -> list[tuple[str, Any]]:
        """Scrub ``(name, value)`` pairs such as HTTP headers."""
        out: list[tuple[str, Any]] = []
        for name, item in pairs:
            if self.is_secret_key(name):
                out.append((name, MARKER))
                if report is not None:
                    report.add(name)
            else:
                out.append((name, self.scrub(item, report, name)))
        return out
