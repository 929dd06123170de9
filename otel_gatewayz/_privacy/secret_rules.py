"""The value rule set the scrubber recognises secrets by: detect-secrets' plugins plus a supplement.

Why detect-secrets (Yelp, PyPI ``detect-secrets``): it is the secret scanner Python projects
already run in pre-commit and CI, its formats are maintained upstream (AWS, Stripe, GitHub,
GitLab, Slack, JWT, private keys, Twilio, SendGrid, Azure storage, OpenAI, PyPI, npm, ...),
and every regex-based plugin exposes them as data: a ``denylist`` of compiled regexes on the
plugin class, plus the charsets and limits of its Base64/Hex high-entropy plugins. We read them
from the *installed* package when a Scrubber is built, so ``pip install -U detect-secrets``
updates the formats without a release of ours. (gitleaks' rule set is larger, but it is Go/RE2
data shipped with a Go binary; a vendored copy would be a home list again, only older.)

Their regexes are written for ``findall`` over source lines; the scrubber adapts them for
redaction inside any string (see ``Scrubber``): when a rule's own group holds the secret after
some context (``aws_key = "..."``) only that group is replaced, otherwise the whole match with
its separators trimmed; and the replacement runs on to the end of the token, since several
patterns match only a fixed-length head of keys that are longer today (Stripe, JWT signatures).

``SUPPLEMENT`` is ours, small and marked: formats detect-secrets lacks that an LLM gateway
meets (Anthropic/OpenAI-style ``sk-`` keys, Groq, Hugging Face, fine-grained GitHub tokens,
Google keys, Stripe test and webhook keys, whole PEM blocks, ``Bearer`` values, ...).

Each rule carries gates: lower-case *literals* one of which must occur in the lower-cased text,
an optional cheap *precheck* regex, and the regex's minimum match length (most telemetry strings
are short and clean, so this is what keeps scrubbing cheap). Gates for detect-secrets' rules are
listed here by rule name; a rule we have no entry for (a plugin added upstream) gets the literal
prefix of its pattern if it has one, else it is tried on every text: slower, never blind.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import pkgutil
import re
import string
from dataclasses import dataclass

__all__ = ["SUPPLEMENT", "EntropyCheck", "Rule", "entropy_check", "load_rules"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """One value format: ``name`` is ``detect-secrets:<Plugin>[i]`` or ``supplement:<name>``.

    ``literals``: lower-case strings, one of which must occur in the lower-cased text for the
    regex to be worth running (empty: no literal, the rule is considered for every text).
    ``precheck``: a cheap regex (literal head, lower-case) searched in the lower-cased text
    first, for rules whose own regex is slow to fail (lookbehinds, context before the secret).
    ``min_length``: the shortest text the regex can match; shorter texts skip the rule.
    """

    name: str
    pattern: re.Pattern[str]
    literals: tuple[str, ...]
    precheck: re.Pattern[str] | None = None
    min_length: int = 0


def _min_length(pattern: re.Pattern[str]) -> int:
    """The regex's minimum match width from the stdlib parser (0 when it cannot say)."""
    try:
        try:
            parser = importlib.import_module("re._parser")
        except ImportError:  # Python 3.10
            parser = importlib.import_module("sre_parse")
        return int(parser.parse(pattern.pattern, pattern.flags).getwidth()[0])
    except Exception:  # noqa: BLE001 - an unknown parser: no length filter
        return 0


def _make(name: str, pattern: re.Pattern[str], literals: tuple[str, ...], precheck: str | None) -> Rule:
    return Rule(name, pattern, literals, re.compile(precheck) if precheck else None, _min_length(pattern))


def _rule(name: str, pattern: str, *literals: str, flags: int = 0) -> Rule:
    return _make(f"supplement:{name}", re.compile(pattern, flags), literals, None)


# Our supplement: formats detect-secrets 1.5 does not know, or knows only at one length.
SUPPLEMENT: tuple[Rule, ...] = (
    # Whole PEM / PGP / OpenSSH private-key blocks, one line or many, raw or with escaped
    # newlines; a block cut off before its END line is redacted to the end of its base64 body.
    _rule(
        "pem_private_key",
        r"(?:-{5})?BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?(?:-{5})?"
        r"(?:[\s\S]{0,16384}?(?:-{5})?END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?(?:-{5})?|[A-Za-z0-9+/=\s\\:,.-]*)",
        "begin",
    ),
    # PuTTY key files: detect-secrets flags the header line only; the private lines follow it.
    _rule(
        "putty_private_key",
        r"PuTTY-User-Key-File-\d+:(?:[\s\S]{0,16384}?Private-MAC:\s*[0-9a-fA-F]+|[A-Za-z0-9+/=\s\\:,.-]*)",
        "putty-user-key-file",
    ),
    # detect-secrets' Artifactory rules want a space, quote, ``=`` or ``:`` before the token;
    # in a URL path (``/v1/keys/AKC...``) or a single-quoted repr they would not fire.
    # (No literal for the second: ``ap`` is in most texts, and a regex that starts with its
    # literal is searched about as fast as the literal itself.)
    _rule("artifactory_api_key", r"AKC[a-zA-Z0-9]{10,}", "akc"),
    _rule("artifactory_password", r"AP[\dABCDEF][a-zA-Z0-9]{8,}"),
    # sk-/pk-/rk- keys: OpenAI (sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-api03-,
    # sk-ant-admin01-), OpenRouter (sk-or-v1-), DeepSeek, Moonshot and most OpenAI-compatible APIs.
    _rule("sk_dash_key", r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}", "sk-", "pk-", "rk-"),
    _rule("groq_key", r"\bgsk_[A-Za-z0-9]{20,}", "gsk_"),
    _rule("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}", "hf_"),
    _rule("replicate_token", r"\br8_[A-Za-z0-9]{30,}", "r8_"),
    _rule("xai_key", r"\bxai-[A-Za-z0-9]{30,}", "xai-"),
    _rule("perplexity_key", r"\bpplx-[A-Za-z0-9]{30,}", "pplx-"),
    _rule("github_fine_grained_pat", r"\bgithub_pat_[A-Za-z0-9_]{22,}", "github_pat_"),
    _rule("github_token", r"\bgh[pousr]_[A-Za-z0-9]{20,}", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    _rule("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", "k_live_", "k_test_"),
    _rule("stripe_webhook_secret", r"\bwhsec_[A-Za-z0-9+/=]{24,}", "whsec_"),
    _rule("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}", "aiza"),
    _rule("google_oauth_token", r"\bya29\.[0-9A-Za-z_-]{20,}", "ya29."),
    _rule("slack_token", r"\bxox[abeoprs]-[A-Za-z0-9-]{10,}", "xox"),
    _rule("slack_app_token", r"\bxapp-\d-[A-Za-z0-9-]{10,}", "xapp-"),
    _rule("npm_token", r"\bnpm_[A-Za-z0-9]{36}", "npm_"),
    _rule("sentry_token", r"\bsntry[su]_[A-Za-z0-9_+/=]{20,}", "sntry"),
    _rule("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}", "_v1_"),
    # A credential after an auth scheme: "Bearer <token>", "Basic <b64>"; after the word "token"
    # only a value with a digit or symbol ("token required" is English, not a secret). No
    # leading \b: a pattern that starts with its literal is searched much faster.
    _rule("auth_scheme_value", r"(?i:bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})", "bearer", "basic"),
    _rule("token_value", r"(?i:token)\s+((?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})", "token"),
)

# Gates for detect-secrets' rules, by ``<Plugin>[index in its denylist]``: (lower-case literals,
# precheck). Rules whose literal would be in every text (``:``, ``ac``) have none and rely on
# their precheck or on their regex's own literal head (``AC[a-z0-9]{32}`` is searched fast).
_KEY_WORD = "(?:key|pwd|pw|password|pass|token)"
_DS_GATES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "ArtifactoryDetector[0]": (("akc",), None),
    "ArtifactoryDetector[1]": ((), r"ap[\da-f][a-z0-9]{8}"),
    "AWSKeyDetector[0]": (("a3t", "abia", "acca", "akia", "asia"), None),
    "AWSKeyDetector[1]": (("aws",), r"aws.{0,20}?" + _KEY_WORD),
    "AzureStorageKeyDetector[0]": (("accountkey=",), None),
    "BasicAuthDetector[0]": (("://",), None),
    "CloudantDetector[0]": (("cl",), r"cl(?:oudant|ou)?[_-]?(?:api)?" + _KEY_WORD),
    "CloudantDetector[1]": (("cl",), r"cl(?:oudant|ou)?[_-]?(?:api)?" + _KEY_WORD),
    "CloudantDetector[2]": (("cloudant.com",), None),
    "CloudantDetector[3]": (("cloudant.com",), None),
    "DiscordBotTokenDetector[0]": ((), r"\.[a-z0-9_-]{6}\.[a-z0-9_-]{27}"),
    "GitHubTokenDetector[0]": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), None),
    "GitLabTokenDetector[0]": (("glpat-", "gldt-", "glft-", "glsoat-", "glrt-"), None),
    "GitLabTokenDetector[1]": (("gr1348941",), None),
    "GitLabTokenDetector[2]": (("glcbt-",), None),
    "GitLabTokenDetector[3]": (("glimt-",), None),
    "GitLabTokenDetector[4]": (("glptt-",), None),
    "GitLabTokenDetector[5]": (("glagent-",), None),
    "GitLabTokenDetector[6]": (("gloas-",), None),
    "IbmCloudIamDetector[0]": (("key", "pwd", "pass", "token"), None),
    "IbmCosHmacDetector[0]": (("secret",), r"secret[-_]?(?:access)?[-_]?key"),
    "JwtTokenDetector[0]": (("eyj",), None),
    "MailchimpDetector[0]": (("-us",), None),
    "NpmDetector[0]": (("_authtoken",), None),
    "OpenAIDetector[0]": (("t3blbkfj",), None),
    "PrivateKeyDetector[0]": (("begin dsa private key",), None),
    "PrivateKeyDetector[1]": (("begin ec private key",), None),
    "PrivateKeyDetector[2]": (("begin openssh private key",), None),
    "PrivateKeyDetector[3]": (("begin pgp private key block",), None),
    "PrivateKeyDetector[4]": (("begin private key",), None),
    "PrivateKeyDetector[5]": (("begin rsa private key",), None),
    "PrivateKeyDetector[6]": (("begin ssh2 encrypted private key",), None),
    "PrivateKeyDetector[7]": (("putty-user-key-file-2",), None),
    "PypiTokenDetector[0]": (("pypi-",), None),
    "PypiTokenDetector[1]": (("pypi-",), None),
    "SendGridDetector[0]": (("sg.",), None),
    "SlackDetector[0]": (("xox",), None),
    "SlackDetector[1]": (("hooks.slack.com",), None),
    "SoftlayerDetector[0]": (("softlayer", "sl"), r"(?:softlayer|sl)[_-]?(?:api)?[_-]?" + _KEY_WORD),
    "SoftlayerDetector[1]": (("softlayer.com",), None),
    "SquareOAuthDetector[0]": (("sq0csp-",), None),
    "StripeDetector[0]": (("k_live_",), None),
    "TelegramBotTokenDetector[0]": ((), r":[0-9a-z_-]{35}"),
    "TwilioKeyDetector[0]": ((), None),
    "TwilioKeyDetector[1]": ((), None),
}

# Plugins whose findings are not secrets, or that our key-name logic replaces.
EXCLUDED_PLUGINS = {
    "IPPublicDetector": "an IP address is not a secret (client.address must stay)",
    "KeywordDetector": "secret-looking key names are judged by the scrubber's key tokens",
}

_LITERAL_HEAD = re.compile(r"[A-Za-z0-9_:=]{3,}")


def _gate_for(name: str, pattern: re.Pattern[str]) -> tuple[tuple[str, ...], str | None]:
    """The listed gate, else the pattern's literal head (a plugin added upstream), else none."""
    known = _DS_GATES.get(name)
    if known is not None:
        return known
    head = _LITERAL_HEAD.match(pattern.pattern)
    if head and not re.search(r"[A-Za-z0-9_:=][*?{+]", pattern.pattern[: head.end() + 1]):
        return (head.group(0).lower(),), None
    return (), None


def detect_secrets_rules() -> tuple[Rule, ...]:
    """Every regex of every regex-based detect-secrets plugin installed, in plugin order."""
    import detect_secrets.plugins as plugins
    from detect_secrets.plugins.base import RegexBasedDetector

    rules: list[Rule] = []
    for info in sorted(pkgutil.iter_modules(plugins.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{plugins.__name__}.{info.name}")
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ != module.__name__
                or not issubclass(cls, RegexBasedDetector)
                or inspect.isabstract(cls)
                or cls_name in EXCLUDED_PLUGINS
            ):
                continue
            for i, regex in enumerate(getattr(cls, "denylist", ())):
                compiled = regex if isinstance(regex, re.Pattern) else re.compile(str(regex))
                name = f"{cls_name}[{i}]"
                rules.append(_make(f"detect-secrets:{name}", compiled, *_gate_for(name, compiled)))
    return tuple(rules)


_loaded: tuple[tuple[Rule, ...], str] | None = None


def load_rules() -> tuple[tuple[Rule, ...], str]:
    """``(rules, source)``: the supplement first, then detect-secrets' rules (loaded once).

    Without a working detect-secrets the supplement alone is used and an error says so:
    scrubbing goes on, with fewer formats.
    """
    global _loaded
    if _loaded is None:
        try:
            from importlib.metadata import version

            found, source = detect_secrets_rules(), f"detect-secrets {version('detect-secrets')} + supplement"
        except Exception:  # a broken install must not stop scrubbing
            logger.exception("otel_gatewayz: detect-secrets rules could not be loaded; using the supplement only")
            found, source = (), "supplement only (detect-secrets missing)"
        _loaded = ((*SUPPLEMENT, *found), source)
    return _loaded


@dataclass(frozen=True)
class EntropyCheck:
    """detect-secrets' high-entropy test (its charsets and limits), for values with no known format.

    Their limits are tuned for long strings; a short random value cannot reach them (16
    characters have at most 4 bits each), so the limit is capped at 80% of the maximum a
    string of that length can reach. A value with no digit is never judged random.
    """

    base64_charset: frozenset[str]
    base64_limit: float
    hex_limit: float
    min_length: int = 16

    def is_high_entropy(self, value: str) -> bool:
        """True for a random-looking value; one in a single case by its longest ``-_.`` part.

        Identifiers are lower-case words and numbers joined by separators
        (``claude-3-5-sonnet-20241022``, ``eastus2-openai-prod-01``): their parts are short,
        where a random token's are long, or mixed-case.
        """
        if len(value) > 4096 or not any(ch.isdigit() for ch in value):
            return False
        mixed = any(ch.isupper() for ch in value) and any(ch.islower() for ch in value)
        part = value.replace(".", "") if mixed else max(_SEPARATORS.split(value), key=len)
        size = len(part)
        if size < self.min_length:
            return False
        if all(ch in string.hexdigits for ch in part):
            if part.isdigit():
                return False
            return _shannon(part) > min(self.hex_limit, 0.8 * math.log2(min(size, 16)))
        if all(ch in self.base64_charset for ch in part) and any(ch.isalpha() for ch in part):
            return _shannon(part) > min(self.base64_limit, 0.8 * math.log2(size))
        return False


_SEPARATORS = re.compile(r"[-_.]")


def _shannon(value: str) -> float:
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def entropy_check() -> EntropyCheck:
    """The check with detect-secrets' charset and limits (their defaults 4.5 / 3.0 without it)."""
    try:
        from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

        b64, hexa = Base64HighEntropyString(), HexHighEntropyString()
        return EntropyCheck(frozenset(b64.charset), float(b64.entropy_limit), float(hexa.entropy_limit))
    except Exception:  # noqa: BLE001 - see load_rules
        return EntropyCheck(frozenset(string.ascii_letters + string.digits + "+/-_="), 4.5, 3.0)
