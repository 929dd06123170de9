"""One redaction engine for every signal that leaves the process.

Values are recognised by their format (``secret_rules``: detect-secrets' maintained rules plus
our supplement, e.g. ``sk_live_...``, ``ghp_...``, PEM blocks, base64-wrapped keys) anywhere in
any string: messages, URL paths and queries, reprs, JSON. Keys are judged by their normalised
tokens (``azureOpenAIKey`` -> azure/open/ai/key, ``X-Goog-Api-Key``, ``creds``), in mappings and
in text (``key=value``, ``key: value``, ``--key value``, form bodies, reprs): a key that names a
secret has its whole value replaced; an ambiguous one (``azure_openai``, ``auth_code``) only a
high-entropy value. The marker keeps the key and never echoes any part of the secret. What was
redacted is recorded as paths and a count, never values.

Cost: one pass of a literal trie over the lower-cased text decides which rules can match and
where key names are; only those run. Most telemetry strings are short, clean and repeated, so
verdicts are also memoised.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from .secret_rules import EntropyCheck, Rule, entropy_check, load_rules

MARKER = "[REDACTED]"

# Key ids are identifiers, not secrets; the spec shows them on the Sentry user.
_BUILTIN_SAFE_KEYS = (r"^(api[-_ ]?)?key[-_ ]?id$",)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Key tokens that name a secret wherever they stand (unless a qualifier ends the key).
_STRONG = _words(
    "password passwd passphrase passcode secret secrets token credential credentials cred creds cookie "
    "cookies authorization authorisation jwt bearer csrf xsrf dsn apikey privatekey accesskey secretkey "
    "sessionid sessionkey sessiontoken authtoken accesstoken refreshtoken idtoken clientsecret "
    "connectionstring connstr signingkey masterkey encryptionkey passkey licensekey subscriptionkey "
    "authkey clientkey servicekey accountkey storagekey sharedkey hmackey apitoken xapikey"
)
# Tokens that name a secret only as the last token: ``stripe_key``, ``db_pass``, ``x-auth``.
_WEAK_LAST = frozenset({"key", "pass", "pwd", "auth", "sig", "signature", "session", "sas"})
# A last token that makes the key describe a secret rather than hold it: ``api_key_id``,
# ``token_count``, ``max_tokens`` (plural), ``private_key_path``, ``InvalidTokenError``.
_QUALIFIERS = _words(
    "id ids count counts type types name names kind len length size limit limits max min usage used "
    "expires expiry expiration exp at ttl url uri endpoint path file filename dir env var hint label "
    "version format algorithm alg enabled required present provided source location index idx created "
    "updated rotated error errors exception warning missing invalid expired exceeded mismatch status "
    "method mode scheme provider header field prefix suffix last4 hash policy reset budget tokens ms "
    "seconds model models deployment region org organization project base host hostname domain user "
    "username email timeout retries"
)
# Tokens that make a key ambiguous: its value is redacted when it is high-entropy.
_AMBIGUOUS = _words(
    "openai anthropic groq hf huggingface stripe aws azure gcp github gitlab slack twilio sendgrid sentry "
    "oauth code nonce salt hmac signed license conn connection access private client refresh login otp "
    "pin api"
)
# Lower-case fragments one of which every secret or ambiguous key contains (the text gate).
# Ambiguous tokens common in ordinary text (``client``, ``api``, ``code``) are left out: in text
# only the rarer ones mark a key worth an entropy check (mappings judge every key).
_KEY_WORDS = _words(
    "pass pwd secret token cred cookie auth jwt bearer csrf xsrf dsn key sig session sas openai "
    "anthropic groq stripe aws azure gcp github gitlab slack twilio sendgrid hmac nonce salt otp"
)
_KEY_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Base64 of the heads of common secrets: a wrapped key (``c2tfbGl2ZV8...`` = ``sk_live_...``) is
# decoded and checked only when one of these occurs.
_B64_HEADS = (
    "sk-",
    "sk_",
    "rk_",
    "ghp_",
    "gho_",
    "github_pat_",
    "AKIA",
    "ASIA",
    "-----BEGIN",
    "BEGIN",
    "xox",
    "gsk_",
    "hf_",
    "AIza",
    "eyJ",
    "Bearer ",
    "whsec_",
    "glpat-",
    "SG.",
    "ya29.",
    "npm_",
    "pypi-",
)
_B64_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
_KEY_REST = re.compile(r"[A-Za-z0-9_.-]*")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_TAIL = r"(?P<_ogz_tail>[A-Za-z0-9_\-]*)"

_CARD = r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"
_DIGIT_RUN = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d")
_CARD_RE = re.compile(_CARD)
# What follows a key in text: an optional closing quote, then ``=``, ``:``, ``:=`` or ``=>``.
_ASSIGN = re.compile(r"""\\?["']?[ \t]*(?::=|=>|=(?!=)|:(?!//))[ \t]*""")
# A flag's value: ``--api-key abc``.
_FLAG_GAP = re.compile(r"[ \t]+(?=[^\s-])")
_VALUE = re.compile(
    r"""\[REDACTED\]|\\"(?:[^"\\\n]|\\[^"\n])*\\"|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
    r"""|(?:(?i:bearer|basic|token|digest)[ \t]+)?[^\s&,;"'<>{}()\[\]]+"""
)
_URL_USERINFO = re.compile(r"(?P<userinfo>[^/@\s?#]+)@")
# A generic ``key = value`` finder, used only when the user configured extra key patterns
# (they may name keys none of the gate's fragments occur in).
_ANY_KEY = re.compile(r"(?<![\w.-])[A-Za-z_][\w.-]{0,80}?(?=\\?[\"']?[ \t]*(?::=|=>|=(?!=)|:(?!//)))")
_MAX_JSON_SCAN = 65_536
_CACHE_SIZE = 4096
_CACHE_MAX_TEXT = 512
# Exact types of most attribute values: nothing to scrub in them, and no ABC check to find out.
_SCALARS = frozenset({int, float, bool})

_PAIR, _URL, _B64 = -1, -2, -3  # gate actions besides value rules


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


def key_tokens(key: str) -> list[str]:
    """``azureOpenAIKey`` -> ``['azure', 'open', 'ai', 'key']``; also splits ``-_. `` and digits."""
    return [t.lower() for t in _KEY_TOKEN.findall(key)]


def _b64_heads() -> list[str]:
    """Fully determined base64 characters of each head, at the start of an encoded blob."""
    heads = []
    for head in _B64_HEADS:
        raw = head.encode()
        encoded = base64.b64encode(raw).decode()
        stable = encoded[: (len(raw) // 3) * 4]
        if len(stable) >= 4:
            heads.append(stable.lower())
    return heads


def _trie_regex(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, as a trie (one branch per next character)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


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


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    regex: re.Pattern[str]
    groups: int  # the rule's own groups; a tail group follows them when ``tail``
    tail: bool


class Scrubber:
    """Redacts secrets by key name and by value format; safe for any JSON-like value."""

    def __init__(self, extra_keys: Iterable[str] = (), safe_keys: Iterable[str] = ()) -> None:
        extra = tuple(extra_keys)
        self._extra = re.compile("|".join(f"(?:{p})" for p in extra), re.IGNORECASE) if extra else None
        self._safe = re.compile("|".join(f"(?:{p})" for p in (*_BUILTIN_SAFE_KEYS, *safe_keys)), re.IGNORECASE)
        rules, self.rules_source = load_rules()
        self.rules: tuple[Rule, ...] = rules
        self._entropy: EntropyCheck = entropy_check()
        self._compiled = [self._compile(rule) for rule in rules]
        self._always = tuple(i for i, rule in enumerate(rules) if not rule.literals)
        # literal -> actions (rule indices, _PAIR, _URL, _B64); a literal also triggers what
        # its prefixes trigger, since the trie reports the longest literal at each position.
        actions: dict[str, set[int]] = {}
        for i, rule in enumerate(rules):
            for literal in rule.literals:
                actions.setdefault(literal, set()).add(i)
        for word in sorted(_KEY_WORDS):
            actions.setdefault(word, set()).add(_PAIR)
        actions.setdefault("://", set()).add(_URL)
        for head in (*_b64_heads(), "eyj", "eyc"):  # ``{"`` and ``{'``: a JSON or dict blob
            actions.setdefault(head, set()).add(_B64)
        self._actions = {
            literal: frozenset().union(*(acts for other, acts in actions.items() if literal.startswith(other)))
            for literal in actions
        }
        self._gate = re.compile(f"(?=({_trie_regex(actions)}))")
        # Telemetry repeats itself (methods, routes, hosts, attribute names): remember verdicts.
        self._clean_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(self._clean)
        self._key_class = functools.lru_cache(maxsize=_CACHE_SIZE)(self._classify_key)
        self.is_secret_key = functools.lru_cache(maxsize=_CACHE_SIZE)(self._is_secret_key)  # type: ignore[method-assign]

    @staticmethod
    def _compile(rule: Rule) -> _Compiled:
        """The rule's regex followed by a tail that runs on to the end of the token."""
        try:
            regex = re.compile(f"(?:{rule.pattern.pattern}){_TAIL}", rule.pattern.flags)
            return _Compiled(rule, regex, rule.pattern.groups, True)
        except re.error:  # a pattern that cannot be wrapped (global inline flags): as it is
            return _Compiled(rule, rule.pattern, rule.pattern.groups, False)

    # --- keys -------------------------------------------------------------------------------

    def is_secret_key(self, key: str) -> bool:
        """True when a value stored under ``key`` is a secret (cached :meth:`_is_secret_key`)."""
        return self._is_secret_key(key)

    def _is_secret_key(self, key: str) -> bool:
        """True when a value stored under ``key`` is a secret whatever it looks like.

        Dotted attribute names are judged by their last part, so
        ``http.request.header.authorization`` is a secret and ``gen_ai.usage.input_tokens`` is not.
        """
        return self._key_class(key) == 2

    def _classify_key(self, key: str) -> int:
        """2: always a secret; 1: ambiguous (high-entropy values are); 0: not a secret."""
        name = key.strip().strip("\"'-").rsplit(".", 1)[-1]
        if self._safe.search(name):
            return 0
        if self._extra is not None and (self._extra.search(name) or self._extra.search(key)):
            return 2
        tokens = key_tokens(name)
        if not tokens:
            return 0
        last = len(tokens) - 1
        strong = {i for i, tok in enumerate(tokens) if tok in _STRONG or _compound(tok)}
        # A session id is a credential when it is the name (``session_id``), as in sentry-sdk's
        # denylist; another product's (``posthog_session_id``, the spec's example) is a correlation id.
        strong |= {
            i + 1
            for i in range(last)
            if tokens[i] + tokens[i + 1] in _STRONG and not (i > 0 and tokens[i] + tokens[i + 1] == "sessionid")
        }
        if tokens[last] in _QUALIFIERS and last not in strong:
            return 0
        if strong or tokens[last] in _WEAK_LAST:
            return 2
        if any(tok in _AMBIGUOUS or tok in _WEAK_LAST for tok in tokens):
            return 1
        return 0

    # --- text -------------------------------------------------------------------------------

    def scrub_text(self, text: str, report: ScrubReport | None = None, path: str = "") -> str:
        """Redact secrets inside free text, URLs included."""
        out, hit = self._clean_cached(text) if len(text) <= _CACHE_MAX_TEXT else self._clean_long(text)
        if hit and report is not None:
            report.add(path)
        return out

    def _clean_long(self, text: str) -> tuple[str, bool]:
        """A long text line by line, through the memo: tracebacks repeat their frames' lines.

        Only private-key blocks span lines (no other rule, key or value crosses a newline), so a
        text with one is cleaned whole.
        """
        if "\n" not in text or "BEGIN" in text or "PuTTY" in text:
            return self._clean(text)
        lines, hit = [], False
        for line in text.split("\n"):
            out, line_hit = self._clean_cached(line) if len(line) <= _CACHE_MAX_TEXT else self._clean(line)
            lines.append(out)
            hit = hit or line_hit
        return ("\n".join(lines), True) if hit else (text, False)

    def _clean(self, text: str) -> tuple[str, bool]:
        # Secrets hide behind URL encoding (``token%3Dabc``, ``BEGIN+RSA+PRIVATE+KEY``). With a
        # ``%`` the decoded text is judged first (a whole key block, not just its encoded
        # header); a ``+`` alone is decoded only when the text as it is holds no secret, since
        # ``+`` is also a base64 character (``AccountKey=ab+cd...`` must stay whole).
        if "%" in text:
            decoded = unquote_plus(text)
            if decoded != text:
                out, hit = self._scan(decoded, 1)
                if hit:
                    return out, True
        out, hit = self._scan(text, 0)
        if not hit and "+" in text and "%" not in text:
            decoded = text.replace("+", " ")
            decoded_out, decoded_hit = self._scan(decoded, 1)
            if decoded_hit:
                return decoded_out, True
        return out, hit

    def _scan(self, text: str, depth: int) -> tuple[str, bool]:
        lowered = text.lower()
        triggered: set[int] = set(self._always)
        key_hits: list[int] = []
        url_hits: list[int] = []
        b64_hits: list[int] = []
        for m in self._gate.finditer(lowered):
            for action in self._actions[m.group(1)]:
                if action >= 0:
                    triggered.add(action)
                elif action == _PAIR:
                    key_hits.append(m.start())
                elif action == _URL:
                    url_hits.append(m.start())
                else:
                    b64_hits.append(m.start())
        hits = 0
        out = text
        if b64_hits and depth < 2:
            out, n = self._wrapped(out, b64_hits, depth)
            if n:  # the text changed: find the keys and rules again in what is left
                cleaned, _ = self._scan(out, 2)
                return cleaned, True
        if url_hits and "@" in out:  # all of ``user:password@``, before BasicAuth takes the password alone
            out, n = self._userinfo(out)
            hits += n
        # Formats before key names: a whole key block or token goes before a key could take a piece.
        size = len(text)
        for i in sorted(triggered):
            compiled = self._compiled[i]
            rule = compiled.rule
            if size < rule.min_length or (rule.precheck is not None and rule.precheck.search(lowered) is None):
                continue
            out, n = compiled.regex.subn(functools.partial(_redact_match, compiled), out)
            hits += n
        if key_hits or self._extra is not None:
            if hits:  # positions moved: find the key words again in what is left
                key_hits = [m.start() for m in self._gate.finditer(out.lower()) if _PAIR in self._actions[m.group(1)]]
            out, n = self._pairs(out, key_hits)
            hits += n
        if _DIGIT_RUN.search(out):
            out, n = self._cards(out)
            hits += n
        return out, hits > 0

    def _pairs(self, text: str, key_hits: list[int]) -> tuple[str, int]:
        """Redact values after secret keys: ``key=v``, ``"key": "v"``, ``key: v``, ``--key v``."""
        spans: list[tuple[int, int, int]] = []  # key start, value start, value end
        seen_end = -1
        starts: Iterable[int] = key_hits
        if self._extra is not None:
            starts = sorted({*key_hits, *(m.start() for m in _ANY_KEY.finditer(text))})
        for pos in starts:
            if pos < seen_end:
                continue
            end = _KEY_REST.match(text, pos).end()  # type: ignore[union-attr]  # ``*`` always matches
            seen_end = end
            assign = _ASSIGN.match(text, end)
            if assign is None and text[end : end + 1] not in (" ", "\t"):
                continue  # the common case: a key word with no value after it
            start = pos
            while start > 0 and text[start - 1] in _KEY_CHARS:
                start -= 1
            key = text[start:end]
            if assign is None and key.startswith("-"):
                assign = _FLAG_GAP.match(text, end)
            if assign is None:
                continue
            kind = self._key_class(key)
            if kind == 0:
                continue
            value = _VALUE.match(text, assign.end())
            if value is None:
                continue
            bare = value.group(0).strip("\"'\\")
            if bare == MARKER or (kind == 1 and not self._entropy.is_high_entropy(bare)):
                continue
            if bare == value.group(0) and _ASSIGN.match(text, value.end()):
                continue  # ``key: aws_secret = "..."``: the "value" is the next key; judge that one
            spans.append((start, value.start(), value.end()))
            seen_end = value.end()
        if not spans:
            return text, 0
        parts, last = [], 0
        for _key_start, value_start, value_end in spans:
            found = text[value_start:value_end]
            quote = found[: len(found) - len(found.lstrip("\"'\\"))]
            # A quoted value stays quoted, so JSON or a repr around it stays well-formed.
            parts += [text[last:value_start], quote, MARKER, quote]
            last = value_end
        parts.append(text[last:])
        return "".join(parts), len(spans)

    @staticmethod
    def _userinfo(text: str) -> tuple[str, int]:
        """``scheme://user:pass@host`` -> ``scheme://[REDACTED]@host``."""
        parts, last, n, pos = [], 0, 0, text.find("://")
        while pos >= 0:
            m = _URL_USERINFO.match(text, pos + 3)
            if m and m.group("userinfo") != MARKER:
                parts += [text[last : pos + 3], MARKER, "@"]
                last, n = m.end(), n + 1
            pos = text.find("://", pos + 3)
        parts.append(text[last:])
        return "".join(parts), n

    def _wrapped(self, text: str, starts: list[int], depth: int) -> tuple[str, int]:
        """Base64 blobs whose decoded text holds a secret (``c2tfbGl2ZV8...``) are redacted.

        A blob starts where the gate saw the encoded head of a secret; it ends where the base64
        alphabet does, or at an earlier ``/`` (a URL path goes on after it).
        """
        parts, last, n = [], 0, 0
        for start in starts:
            if start < last or (start > 0 and text[start - 1] in _B64_RUN and text[start - 1] not in "/="):
                continue
            end = start
            while end < len(text) and text[end] in _B64_RUN and text[end] != "=":
                end += 1
            while end < len(text) and text[end] == "=":  # padding ends a blob
                end += 1
            while end - start >= 16:
                if self._decodes_to_secret(text[start:end], depth):
                    parts += [text[last:start], MARKER]
                    last, n = end, n + 1
                    break
                end = text.rfind("/", start, end)
        parts.append(text[last:])
        return "".join(parts), n

    def _decodes_to_secret(self, run: str, depth: int) -> bool:
        body = run.rstrip("=")
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(body + "=" * (-len(body) % 4))
            except (binascii.Error, ValueError):
                continue
            try:
                decoded = raw.decode("utf-8")
            except UnicodeDecodeError:  # not text: not a wrapped key, or a path ran on after it
                continue
            if decoded and sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded) >= 0.9 * len(decoded):
                return self._scan(decoded, depth + 1)[1]
        return False

    @staticmethod
    def _cards(text: str) -> tuple[str, int]:
        n = 0

        def card_sub(m: re.Match[str]) -> str:
            nonlocal n
            if not _luhn(re.sub(r"\D", "", m.group(0))):
                return m.group(0)
            n += 1
            return MARKER

        return _CARD_RE.sub(card_sub, text), n

    # --- values -----------------------------------------------------------------------------

    def scrub(self, value: Any, report: ScrubReport | None = None, path: str = "", depth: int = 0) -> Any:
        """Return a scrubbed copy of ``value`` (dicts, lists, tuples, JSON strings, text)."""
        if depth > 20 or type(value) in _SCALARS:
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
        if type(value) is dict or isinstance(value, Mapping):
            result: dict[Any, Any] = {}
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                scalar = type(item) in _SCALARS  # exact types: never a Mapping, scrubbed as they are
                text = type(item) is str
                if (
                    isinstance(key, str)
                    and item not in (None, "", MARKER)
                    and (scalar or text or not isinstance(item, Mapping))
                ):
                    kind = self._key_class(key)
                    if kind == 2 or (kind == 1 and isinstance(item, str) and self._entropy.is_high_entropy(item)):
                        result[key] = [MARKER] * len(item) if isinstance(item, (list, tuple)) else MARKER
                        if isinstance(item, tuple):
                            result[key] = tuple(result[key])
                        if report is not None:
                            report.add(child)
                        continue
                if scalar:
                    result[key] = item
                elif (
                    text and depth < 20 and len(item) <= _CACHE_MAX_TEXT and item.lstrip()[:1] not in ("{", "[")
                ):  # what ``self.scrub(item, ...)`` does with a short text, without the call
                    result[key], hit = self._clean_cached(item)
                    if hit and report is not None:
                        report.add(child)
                else:
                    result[key] = self.scrub(item, report, child, depth + 1)
            return result
        if isinstance(value, (list, tuple)):
            items = [self.scrub(item, report, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            if len(items) > 1:
                self._scrub_flag_values(value, items, report, path)
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def _scrub_flag_values(self, original: Any, items: list[Any], report: ScrubReport | None, path: str) -> None:
        """``["--ssl-keyfile-password", "x"]`` (``sys.argv``): the value after a secret flag goes."""
        last = len(items) - 1
        for i in [i for i, flag in enumerate(original) if type(flag) is str and flag[:1] == "-" and i < last]:
            flag, following = original[i], items[i + 1]
            if (
                "=" not in flag
                and isinstance(following, str)
                and following != MARKER
                and not following.startswith("-")
                and self.is_secret_key(flag)
            ):
                items[i + 1] = MARKER
                if report is not None:
                    report.add(f"{path}[{i + 1}]")

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


def _compound(token: str) -> bool:
    """Unsplit compounds: ``dbpassword``, ``xsrftoken``, ``clientsecret``, ``openaiapikey``."""
    return len(token) > 6 and token.endswith(("password", "passwd", "secret", "token", "apikey"))


def _redact_match(compiled: _Compiled, m: re.Match[str]) -> str:
    """The match with the secret replaced: the rule's own group when it holds the secret after
    some context (``aws_key = "<secret>"``), else the whole match with separators trimmed;
    a match that ends where the token goes on takes the rest of the token too."""
    text = m.group(0)
    start, end = m.span()
    rule_end = m.start("_ogz_tail") if compiled.tail else end
    best: tuple[int, int] | None = None
    for g in range(1, compiled.groups + 1):
        s, e = m.span(g)
        if s > start and e - s >= 6 and (best is None or e - s > best[1] - best[0]):
            best = (s, e)
    if best is not None:
        s, e = best
        if e == rule_end:
            e = end
    else:
        s, e = start, end
        while s < e and text[s - start] in " \t\r\n=:\"'":
            s += 1
        while e > s and text[e - 1 - start] in " \t\r\n\"'" and e <= rule_end:
            e -= 1
    return text[: s - start] + MARKER + text[e - start :]
