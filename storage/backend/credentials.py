"""Which backend options and URL parts are credentials: the one rule, used everywhere.

Vocabulary: an option *name* is secret when one of its words (split at ``_``, ``-``, ``.`` and
camelCase) is a credential word (``key``, ``secret``, ``token``, ``password``, ``sig``,
``sas``, ``credential`` ...), or it is ``connection_string``. ``key`` (s3fs's access key id),
``account_key``, ``sas_token``, ``X-Amz-Signature`` and ``client_secret`` are secret;
``connections``, ``region`` and ``object_lock_days`` are not.

Invariants:
- A URL that carries a credential (a password in its userinfo, or a credential-like query
  parameter such as ``token``, ``sig`` or any ``X-Amz-*``) is refused with one sentence before
  anything opens, logs or records it; a user name alone (``abfs://container@account...``) is
  not a credential. Option values that are URLs (``endpoint_url``) are held to the same rule.
- Messages name the option or parameter, never its value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from storage.errors import InvalidConfig

SECRET_WORDS = frozenset({
    "key", "keys", "secret", "secrets", "token", "tokens", "password", "passwd", "pwd", "pass",
    "credential", "credentials", "sas", "sig", "signature", "apikey", "auth", "authorization",
})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(str(name))]


def is_secret_name(name: str) -> bool:
    """True when an option or query-parameter name holds a credential."""
    words = _words(name)
    if "connection" in words and "string" in words:
        return True
    if words[:2] == ["x", "amz"]:
        return True  # every X-Amz-* query parameter belongs to a presigned request
    return any(w in SECRET_WORDS for w in words)


def redact_options(options: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` safe to print: credential values replaced by ``***``."""
    return {k: ("***" if is_secret_name(k) and v else v) for k, v in options.items()}


def split_secret_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain options, secret options) by name."""
    plain: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for k, v in (options or {}).items():
        (secret if is_secret_name(k) else plain)[k] = v
    return plain, secret


def url_credentials(url: str) -> list[str]:
    """What in ``url`` is a credential: ``"password"`` for userinfo with a password, and the
    names of credential-like query parameters. Empty for a clean URL or a plain path."""
    parts = urlsplit(str(url))
    if not parts.scheme or len(parts.scheme) == 1:
        return []
    found = []
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append("password")
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    names += [name for name, _ in parse_qsl(parts.fragment, keep_blank_values=True)]
    found += sorted({n for n in names if is_secret_name(n)})
    return found


def refuse_url_credentials(url: str, what: str = "The repository URL") -> None:
    """Raise InvalidConfig naming what to move out of ``url`` (never quoting its value)."""
    found = url_credentials(url)
    if not found:
        return
    kinds = "a password" if found == ["password"] else "the credential " + ", ".join(
        "password" if f == "password" else f"parameter {f!r}" for f in found)
    raise InvalidConfig(
        f"{what} carries {kinds}; remove it from the URL and pass it as a secret option "
        "(--option NAME=VALUE, a Prefect Secret block or the cloud's environment variables), "
        "so it is never recorded in run names, logs or the audit log.")


def refuse_option_credentials(options: dict[str, Any] | None) -> None:
    """The URL rule for option values that are URLs (``endpoint_url``, ``cloud_endpoint``)."""
    for name, value in (options or {}).items():
        if isinstance(value, str) and "://" in value and not is_secret_name(name):
            refuse_url_credentials(value, f"The option {name}")
