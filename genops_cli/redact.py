"""Keep secrets out of everything genops stores or prints: a provider's error can echo the API key.

Secrets are matched by VALUE, whatever variable holds them, and by shape:
- values registered at load time: every env-var Secret a pipeline uses (`register_env_vars`, from the
  pipeline's `{type: env_var, env_vars: [...]}` entries), Secrets of pipelines built in code
  (`register_secret`), and the variables listed under `redact: {env_vars: [...]}` in `.genops.yml`;
- values of environment variables whose names look secret (…_KEY, …_TOKEN, …_SECRET, …_PASSWORD, …_CRED…);
- key shapes (OpenAI/Anthropic `sk-…`, `Bearer …`, `Basic …`, AWS, Google, GitHub, Slack, Hugging Face keys,
  `api_key=…`-style assignments, the password in a URL such as `mysql://user:PASSWORD@host`).
Each value is also matched in its base64 (standard and URL-safe, at any alignment inside a longer base64 text),
URL-encoded and JSON-escaped forms.

    register_env_vars(["LLM_CRED"])
    redact("401: key cred-9f8e7d6c5b4a invalid")   # -> "401: key *** invalid"
    redact_obj({"error": "..."})                   # every string inside, keys included

Applied where records are built (`ledger.serialize`: spool and ledger rows) and where text leaves the process
(CLI stdout/stderr, log handlers, exports, reports, OTel attributes, webhook bodies).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

# Shapes of credentials seen in provider errors and headers. Group "keep" is kept, the rest is masked.
_KEY_SHAPES = re.compile(
    r"(?P<keep>\bsk-(?:ant-(?:api\d\d-)?|proj-|svcacct-|admin-)?)[A-Za-z0-9_\-]{8,}"
    r"|(?P<keep2>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9_\-\.=+/]{8,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_\-]{30,}"
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|\bhf_[A-Za-z0-9]{30,}"
    r"|(?P<keep3>(?i:\b(?:x-)?api[_-]?key|\baccess[_-]?token|\bauth[_-]?token|\bclient[_-]?secret|\bpassword"
    r"|\bsecret|\bapi-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}\]]{8,}"
    # the password of any URL with credentials (mysql://user:PASSWORD@host), also once a path joined its slashes
    r"|(?P<keep4>\b[A-Za-z][A-Za-z0-9+.\-]*:/{1,2}[^\s:/@\"']*:)[^\s@/\"']+(?=@)",
)
#: Environment variable names whose values are secrets (matched on the upper-cased name).
_SECRET_NAME = re.compile(
    r"(_API_?KEY|_KEY|_KEYS|_TOKEN|_SECRET|_SECRET_KEY|_PASSWORD|_PASSWD|_PWD|_PASS|_CRED|_CREDS|_CREDENTIAL"
    r"|_CREDENTIALS|_ACCESS_KEY|_PRIVATE_KEY|_AUTH)$|^(API_?KEY|TOKEN|SECRET|PASSWORD)$|SECRET|PASSWORD|APIKEY"
    r"|API_KEY"
)
#: Implicit (name-based) values shorter than this, or plain lowercase words, are too likely to be ordinary text.
_MIN_IMPLICIT = 8
#: Explicitly registered values (pipeline Secrets, `redact.env_vars`) are masked from this length on.
_MIN_EXPLICIT = 4
_PLAIN_WORD = re.compile(r"^[a-z]+$|^[A-Z]+$|^\d{1,12}$|^(true|false|none|null)$", re.IGNORECASE)

_lock = threading.Lock()
_explicit_values: set[str] = set()
_explicit_env: set[str] = set()
_cache: dict[str, Any] = {"key": None, "pattern": None}


def register_value(value: str | None) -> None:
    """Mask this exact value (and its encodings) everywhere from now on."""
    if value and len(value) >= _MIN_EXPLICIT:
        with _lock:
            _explicit_values.add(value)


def register_env_vars(names: Any) -> None:
    """Mask the values of these environment variables (read when masking, so a later export is covered)."""
    with _lock:
        _explicit_env.update(str(n) for n in names if n)


def register_url(url: str) -> None:
    """A URL whose path, query or password is a credential (webhooks): those parts are masked from now on."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    for secret in (parts.path.strip("/"), parts.query, parts.password):
        if secret and len(secret) >= _MIN_IMPLICIT:
            register_value(secret)


def register_secret(secret: Any) -> None:
    """A Haystack Secret (env-var or token): its resolved value is masked."""
    env_vars = getattr(secret, "_env_vars", None) or getattr(secret, "env_vars", None)
    if env_vars:
        register_env_vars(env_vars)
    try:
        value = secret.resolve_value()
    except Exception:  # an unset strict env var: nothing to mask
        return
    if isinstance(value, str):
        register_value(value)


def _looks_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.upper())) and not name.upper().startswith("GENOPS_MAX_")


def secret_values() -> list[str]:
    """Every value masked right now: registered values, registered variables' values, secret-named variables."""
    values = set(_explicit_values)
    for name in list(_explicit_env):
        value = os.environ.get(name)
        if value and len(value) >= _MIN_EXPLICIT:
            values.add(value)
    for name, value in os.environ.items():
        if len(value) >= _MIN_IMPLICIT and not _PLAIN_WORD.match(value) and _looks_secret_name(name):
            values.add(value)
    return sorted(values, key=len, reverse=True)


def encoded_forms(value: str) -> set[str]:
    """The value as it may appear inside text: itself, base64 (any alignment), URL-encoded, JSON-escaped."""
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    raw = value.encode("utf-8")
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        # Characters that depend only on the value's bytes, whatever precedes or follows it.
        start = -(-4 * offset // 3)
        end = (8 * (offset + len(raw))) // 6
        stable = encoded[start:end]
        if len(stable) >= 6:
            forms.add(stable)
            forms.add(stable.replace("+", "-").replace("/", "_"))
    return {f for f in forms if len(f) >= _MIN_EXPLICIT}


def _value_pattern() -> re.Pattern[str] | None:
    values = secret_values()
    key = tuple(values)
    with _lock:
        if _cache["key"] == key:
            return _cache["pattern"]
    forms: set[str] = set()
    for value in values:
        forms |= encoded_forms(value)
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) if forms else None
    with _lock:
        _cache["key"], _cache["pattern"] = key, pattern
    return pattern


def _mask_shape(match: re.Match[str]) -> str:
    keep = match.group("keep") or match.group("keep2") or match.group("keep3") or match.group("keep4") or ""
    return keep + MASK


def redact(text: str | None) -> str | None:
    """`text` with every known secret value (in any of its encodings) and key-shaped token masked."""
    if not text:
        return text
    return _apply(_value_pattern(), text)


def _apply(pattern: re.Pattern[str] | None, text: str) -> str:
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _KEY_SHAPES.sub(_mask_shape, text)


def redactor() -> Any:
    """`redact` with the secret values looked up once: for loops over many cells (exports)."""
    pattern = _value_pattern()

    def scrub(text: Any) -> Any:
        return _apply(pattern, text) if isinstance(text, str) and text else text

    return scrub


def redact_obj(value: Any, scrub: Any = None) -> Any:
    """A copy of JSON-like data with every string (mapping keys included) redacted; numbers and other objects are
    returned as they are."""
    scrub = scrub or redactor()
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(k): redact_obj(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v, scrub) for v in value]
    return value


_factory_installed = False


def install_log_redaction() -> None:
    """Mask secrets in every log record any library creates, whichever handler prints it (logging's last-resort
    handler included): the record factory redacts the message once, when the record is made."""
    global _factory_installed
    import logging

    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        RedactingFilter().filter(record)
        return record

    logging.setLogRecordFactory(factory)


class RedactingFilter:
    """logging filter: masks secrets in a record's message (its arguments are merged first)."""

    def filter(self, record: Any) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging's own error handling
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
