"""A generated corpus of secrets in every format the scrubber's rule set knows, and of look-alikes
that are not secrets. Importable by any test (unit or end-to-end)::

    from tests.secret_corpus import benign_samples, secret_samples, secrets

    for sample in secret_samples():        # Sample(format, secret, text, keyed_only)
        plant(sample.text)                 # as it would appear: with the context its rule needs
        assert_never_leaves(sample.secret)  # the part that must not leave (nor 8 characters of it)

* ``secret_samples(seed, per_format)``: at least two examples of every rule of
  ``otel_gatewayz._privacy.secret_rules`` (detect-secrets' rules by ``detect-secrets:<Plugin>[i]``, our
  supplement by ``supplement:<name>``), plus ``keyed:*`` formats that have no shape of their own
  and are only recognised under a secret key name (``keyed_only``), and ``wrapped:*`` ones
  (base64 of a key). ``text`` differs from ``secret`` for rules that need context
  (``aws_secret_access_key = "<secret>"``, ``https://user:<secret>@host``, PEM armour).
* ``secrets()``: the same as ``(format, secret)`` pairs.
* ``benign_samples()``: ``(kind, value)`` pairs that must come out unchanged: UUIDs, trace, span
  and event ids, git SHAs, model names, routes, timestamps, token counters, key ids.

Every secret is synthetic: random characters of the format's alphabet, length and prefix from a
seeded generator, never a real key. The same seed gives the same corpus.
"""

from __future__ import annotations

import base64
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Sample", "benign_samples", "secret_samples", "secrets"]

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


@dataclass(frozen=True)
class Sample:
    """One planted secret: ``text`` is how it appears, ``secret`` the part that must not leave."""

    format: str
    secret: str
    text: str
    keyed_only: bool = False


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def s(self, alphabet: str, n: int) -> str:
        """``n`` random characters of ``alphabet``, with at least one digit when it has digits."""
        out = [self.r.choice(alphabet) for _ in range(n)]
        digits = [c for c in alphabet if c.isdigit()]
        if digits and n > 4 and not any(c.isdigit() for c in out):
            out[self.r.randrange(n)] = self.r.choice(digits)
        return "".join(out)

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self.r.randbytes(nbytes)).decode()

    def pem_body(self, lines: int = 4) -> str:
        return "\n".join(base64.b64encode(self.r.randbytes(48)).decode() for _ in range(lines))


def _pem(kind: str, body: str, dashes: str = "-----") -> str:
    sep = " " if dashes == "----" else ""
    return f"{dashes}{sep}BEGIN {kind}{sep}{dashes}\n{body}\n{dashes}{sep}END {kind}{sep}{dashes}"


def _same(secret: str) -> tuple[str, str]:
    return secret, secret


# format -> one example as (secret, text); called per_format times with the same generator.
_Maker = Callable[[_Gen], tuple[str, str]]
_DS: dict[str, _Maker] = {
    "detect-secrets:ArtifactoryDetector[0]": lambda g: _same("AKC" + g.s(ALNUM, 70)),
    "detect-secrets:ArtifactoryDetector[1]": lambda g: _same("AP" + g.r.choice("0123456789ABCDEF") + g.s(ALNUM, 30)),
    "detect-secrets:AWSKeyDetector[0]": lambda g: _same(g.r.choice(("AKIA", "ASIA")) + g.s(UPPER_ALNUM, 16)),
    "detect-secrets:AWSKeyDetector[1]": lambda g: (k := g.s(ALNUM + "/+", 40), f'aws_secret_access_key = "{k}"'),
    "detect-secrets:AzureStorageKeyDetector[0]": lambda g: (
        k := g.b64(64),
        f"DefaultEndpointsProtocol=https;AccountName=acct{g.s(LOWER_ALNUM, 6)};AccountKey={k};"
        "EndpointSuffix=core.windows.net",
    ),
    "detect-secrets:BasicAuthDetector[0]": lambda g: (
        p := g.s(ALNUM, 16),
        f"https://svc_user:{p}@db.internal:5432/app",
    ),
    "detect-secrets:CloudantDetector[0]": lambda g: (k := g.s(HEX, 64), f'cloudant_password = "{k}"'),
    "detect-secrets:CloudantDetector[1]": lambda g: (k := g.s(string.ascii_lowercase, 24), f"cl_apikey: '{k}'"),
    "detect-secrets:CloudantDetector[2]": lambda g: (k := g.s(HEX, 64), f"https://acct-x:{k}@acct-x.cloudant.com"),
    "detect-secrets:CloudantDetector[3]": lambda g: (
        k := g.s(string.ascii_lowercase, 24),
        f"https://acct-y:{k}@acct-y.cloudant.com",
    ),
    "detect-secrets:DiscordBotTokenDetector[0]": lambda g: _same(
        g.r.choice("MNO") + g.s(ALNUM, 23) + "." + g.s(B64URL, 6) + "." + g.s(B64URL, 27)
    ),
    "detect-secrets:GitHubTokenDetector[0]": lambda g: _same(g.r.choice(("ghp_", "gho_", "ghu_")) + g.s(ALNUM, 36)),
    "detect-secrets:GitLabTokenDetector[0]": lambda g: _same(g.r.choice(("glpat-", "gldt-", "glrt-")) + g.s(ALNUM, 20)),
    "detect-secrets:GitLabTokenDetector[1]": lambda g: _same("GR1348941" + g.s(ALNUM, 20)),
    "detect-secrets:GitLabTokenDetector[2]": lambda g: _same("glcbt-" + g.s(HEX, 2) + "_" + g.s(ALNUM, 20)),
    "detect-secrets:GitLabTokenDetector[3]": lambda g: _same("glimt-" + g.s(ALNUM, 25)),
    "detect-secrets:GitLabTokenDetector[4]": lambda g: _same("glptt-" + g.s(ALNUM, 40)),
    "detect-secrets:GitLabTokenDetector[5]": lambda g: _same("glagent-" + g.s(ALNUM, 50)),
    "detect-secrets:GitLabTokenDetector[6]": lambda g: _same("gloas-" + g.s(ALNUM, 64)),
    "detect-secrets:IbmCloudIamDetector[0]": lambda g: (k := g.s(ALNUM + "_-", 44), f'ibm_cloud_iam_key = "{k}"'),
    "detect-secrets:IbmCosHmacDetector[0]": lambda g: (k := g.s(HEX, 48), f'ibm_cos_hmac_secret_access_key = "{k}"'),
    "detect-secrets:JwtTokenDetector[0]": lambda g: _same(
        "eyJ" + g.s(B64URL, 30) + "." + "eyJ" + g.s(B64URL, 60) + "." + g.s(B64URL, 43)
    ),
    "detect-secrets:MailchimpDetector[0]": lambda g: _same(g.s(HEX, 32) + "-us" + str(g.r.randint(1, 20))),
    "detect-secrets:NpmDetector[0]": lambda g: (k := "npm_" + g.s(ALNUM, 36), f"//registry.npmjs.org/:_authToken={k}"),
    "detect-secrets:OpenAIDetector[0]": lambda g: _same("sk-" + g.s(ALNUM, 20) + "T3BlbkFJ" + g.s(ALNUM, 20)),
    "detect-secrets:PrivateKeyDetector[0]": lambda g: (b := g.pem_body(), _pem("DSA PRIVATE KEY", b)),
    "detect-secrets:PrivateKeyDetector[1]": lambda g: (b := g.pem_body(), _pem("EC PRIVATE KEY", b)),
    "detect-secrets:PrivateKeyDetector[2]": lambda g: (b := g.pem_body(), _pem("OPENSSH PRIVATE KEY", b)),
    "detect-secrets:PrivateKeyDetector[3]": lambda g: (
        b := g.pem_body(),
        _pem("PGP PRIVATE KEY BLOCK", f"\n{b}\n=" + g.s(B64, 4)),
    ),
    "detect-secrets:PrivateKeyDetector[4]": lambda g: (b := g.pem_body(), _pem("PRIVATE KEY", b)),
    "detect-secrets:PrivateKeyDetector[5]": lambda g: (b := g.pem_body(), _pem("RSA PRIVATE KEY", b)),
    "detect-secrets:PrivateKeyDetector[6]": lambda g: (
        b := g.pem_body(),
        _pem("SSH2 ENCRYPTED PRIVATE KEY", b, "----"),
    ),
    "detect-secrets:PrivateKeyDetector[7]": lambda g: (
        b := g.pem_body(2),
        f"PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: k\nPublic-Lines: 1\n{g.b64(48)}\n"
        f"Private-Lines: 2\n{b}\nPrivate-MAC: {g.s(HEX, 40)}",
    ),
    "detect-secrets:PypiTokenDetector[0]": lambda g: _same("pypi-AgEIcHlwaS5vcmc" + g.s(B64URL, 80)),
    "detect-secrets:PypiTokenDetector[1]": lambda g: _same("pypi-AgENdGVzdC5weXBpLm9yZw" + g.s(B64URL, 80)),
    "detect-secrets:SendGridDetector[0]": lambda g: _same("SG." + g.s(B64URL, 22) + "." + g.s(B64URL, 43)),
    "detect-secrets:SlackDetector[0]": lambda g: _same(
        g.r.choice(("xoxb-", "xoxp-")) + g.s(string.digits, 12) + "-" + g.s(string.digits, 13) + "-" + g.s(ALNUM, 24)
    ),
    "detect-secrets:SlackDetector[1]": lambda g: (
        k := g.s(ALNUM, 24),
        f"https://hooks.slack.com/services/T{g.s(UPPER_ALNUM, 10)}/B{g.s(UPPER_ALNUM, 10)}/{k}",
    ),
    "detect-secrets:SoftlayerDetector[0]": lambda g: (k := g.s(LOWER_ALNUM, 64), f'softlayer_api_key = "{k}"'),
    "detect-secrets:SoftlayerDetector[1]": lambda g: (
        k := g.s(LOWER_ALNUM, 64),
        f"https://api.softlayer.com/soap/v3/{k}",
    ),
    "detect-secrets:SquareOAuthDetector[0]": lambda g: _same("sq0csp-" + g.s(B64URL, 43)),
    "detect-secrets:StripeDetector[0]": lambda g: _same(
        g.r.choice(("sk_live_", "rk_live_")) + g.s(ALNUM, g.r.choice((24, 99)))
    ),
    "detect-secrets:TelegramBotTokenDetector[0]": lambda g: _same(
        str(g.r.randint(10**8, 10**10 - 1)) + ":" + g.s(B64URL, 35)
    ),
    "detect-secrets:TwilioKeyDetector[0]": lambda g: _same("AC" + g.s(HEX, 32)),
    "detect-secrets:TwilioKeyDetector[1]": lambda g: _same("SK" + g.s(HEX, 32)),
}

_SUPPLEMENT: dict[str, _Maker] = {
    "supplement:pem_private_key": lambda g: (
        b := g.pem_body(6),
        _pem(g.r.choice(("ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY")), b),
    ),
    "supplement:putty_private_key": lambda g: (
        b := g.pem_body(3),
        f"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 3\n{b}\nPrivate-MAC: {g.s(HEX, 64)}",
    ),
    "supplement:artifactory_api_key": lambda g: _same("AKC" + g.s(ALNUM, 70)),
    "supplement:artifactory_password": lambda g: _same("AP" + g.r.choice("0123456789ABCDEF") + g.s(ALNUM, 20)),
    "supplement:sk_dash_key": lambda g: _same(
        g.r.choice(
            (
                lambda: "sk-ant-api03-" + g.s(B64URL, 93) + "AA",
                lambda: "sk-proj-" + g.s(B64URL, 120),
                lambda: "sk-or-v1-" + g.s(HEX, 64),
                lambda: "sk-" + g.s(HEX, 32),
            )
        )()
    ),
    "supplement:groq_key": lambda g: _same("gsk_" + g.s(ALNUM, 52)),
    "supplement:huggingface_token": lambda g: _same("hf_" + g.s(ALNUM, 34)),
    "supplement:replicate_token": lambda g: _same("r8_" + g.s(ALNUM, 37)),
    "supplement:xai_key": lambda g: _same("xai-" + g.s(ALNUM, 80)),
    "supplement:perplexity_key": lambda g: _same("pplx-" + g.s(ALNUM, 48)),
    "supplement:github_fine_grained_pat": lambda g: _same("github_pat_" + g.s(ALNUM, 22) + "_" + g.s(ALNUM, 59)),
    "supplement:github_token": lambda g: _same(g.r.choice(("ghs_", "ghr_")) + g.s(ALNUM, 40)),
    "supplement:stripe_key": lambda g: _same(g.r.choice(("sk_test_", "rk_test_", "sk_live_")) + g.s(ALNUM, 99)),
    "supplement:stripe_webhook_secret": lambda g: _same("whsec_" + g.s(ALNUM, 32)),
    "supplement:google_api_key": lambda g: _same("AIza" + g.s(B64URL, 35)),
    "supplement:google_oauth_token": lambda g: _same("ya29." + g.s(B64URL, 120)),
    "supplement:slack_token": lambda g: _same("xoxe-1-" + g.s(ALNUM, 60)),
    "supplement:slack_app_token": lambda g: _same("xapp-1-A" + g.s(UPPER_ALNUM, 10) + "-" + g.s(ALNUM, 40)),
    "supplement:npm_token": lambda g: _same("npm_" + g.s(ALNUM, 36)),
    "supplement:sentry_token": lambda g: _same(g.r.choice(("sntrys_", "sntryu_")) + g.s(ALNUM, 64)),
    "supplement:digitalocean_token": lambda g: _same(g.r.choice(("dop_v1_", "doo_v1_")) + g.s(HEX, 64)),
    "supplement:auth_scheme_value": lambda g: (k := g.s(ALNUM + "._-", 40), f"{g.r.choice(('Bearer', 'Basic'))} {k}"),
    "supplement:token_value": lambda g: (k := g.s(ALNUM, 30) + "." + g.s(ALNUM, 8), f"token {k}"),
}

# No shape of their own: recognised under a secret key name (or as a high-entropy value under an
# ambiguous one), never in free text.
_KEYED: dict[str, _Maker] = {
    "keyed:azure_openai_key": lambda g: _same(g.s(HEX, 32)),
    "keyed:aws_secret_access_key": lambda g: _same(g.s(ALNUM + "/+", 40)),
    "keyed:password": lambda g: _same(g.s(ALNUM + "!#%^*", 18)),
    "keyed:cohere_or_mistral_key": lambda g: _same(g.s(ALNUM, 40)),
}

# A key wrapped in base64 (a config blob, a Basic credential without its scheme).
_WRAPPED: dict[str, _Maker] = {
    "wrapped:base64_stripe_key": lambda g: _same(base64.b64encode(("sk_live_" + g.s(ALNUM, 40)).encode()).decode()),
    "wrapped:base64_json_credentials": lambda g: _same(
        base64.b64encode(f'{{"api_key": "sk-proj-{g.s(B64URL, 60)}"}}'.encode()).decode()
    ),
}

FORMATS: dict[str, _Maker] = {**_DS, **_SUPPLEMENT, **_KEYED, **_WRAPPED}


def secret_samples(seed: int = 13, per_format: int = 2) -> list[Sample]:
    """``per_format`` synthetic examples of every format, deterministic for a ``seed``."""
    gen = _Gen(seed)
    out: list[Sample] = []
    for name, make in FORMATS.items():
        for _ in range(per_format):
            secret, text = make(gen)
            # A multi-line body (PEM, PuTTY) is checked as one string: no line of it may leave.
            secret = secret.replace("\n", "")
            out.append(Sample(name, secret, text, keyed_only=name.startswith("keyed:")))
    return out


def secrets(seed: int = 13, per_format: int = 2) -> list[tuple[str, str]]:
    """``(format_name, secret)`` for every sample of :func:`secret_samples`."""
    return [(s.format, s.secret) for s in secret_samples(seed, per_format)]


def benign_samples(seed: int = 13) -> list[tuple[str, str]]:
    """``(kind, value)`` look-alikes that are not secrets and must come out unchanged."""
    gen = _Gen(seed)
    trace_id, span_id = gen.s(HEX, 32), gen.s(HEX, 16)
    samples = [
        *(("uuid", str(uuid.UUID(int=gen.r.getrandbits(128), version=4))) for _ in range(2)),
        *(("trace_id", gen.s(HEX, 32)) for _ in range(2)),
        *(("span_id", gen.s(HEX, 16)) for _ in range(2)),
        *(("git_sha", gen.s(HEX, 40)) for _ in range(2)),
        ("sentry_event_id", uuid.UUID(int=gen.r.getrandbits(128)).hex),
        ("traceparent", f"00-{trace_id}-{span_id}-01"),
        ("sentry_trace", f"{trace_id}-{span_id}-1"),
        ("release", f"gatewayz-api@{gen.s(HEX, 40)}"),
        ("short_sha", gen.s(HEX, 7)),
        ("request_id", "req_" + gen.s(UPPER_ALNUM, 26)),
        ("completion_id", "chatcmpl-" + gen.s(ALNUM, 29)),
        ("anthropic_message_id", "msg_01" + gen.s(ALNUM, 22)),
        ("timestamp", "2026-12-01T19:52:01.123456Z"),
        ("timestamp", "2026-12-01 19:52:01,123"),
        ("duration", "took 12.5 ms (p99 180.38 ms)"),
        ("ip_port", "127.0.0.1:51234"),
        ("user_agent", "python-httpx/0.28.1"),
        ("content_type", "Content-Type: application/json; charset=utf-8"),
        ("route", "/v1/chat/completions"),
        ("route", "/v1/models/{model_id}"),
        ("route", "/api_keys/{key_id}/usage"),
        ("path", "/v1/users/42/credits"),
        ("url", "https://openrouter.ai/api/v1/chat/completions?stream=true&model=gpt-4o"),
        ("counter", "gen_ai.usage.input_tokens=12"),
        ("counter", "max_tokens=100, total_tokens: 30, token_count=5"),
        ("counter", "gen_ai.usage.output_tokens: 7"),
        ("key_id", "api_key_id=1234"),
        ("key_id", "key_id: 7"),
        ("word", "keyboard"),
        ("word", "monkey"),
        ("message", "Bearer token required"),
        ("message", "token expired, please sign in again"),
        ("message", "InvalidTokenError: token is malformed"),
        ("message", "KeyError: 'choices'"),
        ("message", "Rate limit exceeded: 60 requests per minute for gpt-4o-mini"),
        ("python", "response = await client.post(url, json=payload)"),
        ("python", "if token == expected:"),
        ("dsn_host", "o123456.ingest.sentry.io"),
        ("email", "alice@example.com"),
        ("card_like", "order 1234 5678 9012 3456"),
    ]
    for model in (
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "anthropic/claude-3.5-sonnet:beta",
        "claude-3-5-sonnet-20241022",
        "meta-llama/llama-3.1-405b-instruct",
        "mistralai/mixtral-8x7b-instruct",
        "o1-preview",
        "deepseek/deepseek-chat-v3-0324:free",
        "text-embedding-3-large",
        "gemini-1.5-pro-002",
    ):
        samples.append(("model", model))
    return samples
