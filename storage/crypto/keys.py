"""The master key and the key files (``keys/<sha256>``) that wrap it under passwords.

A key file is JSON::

    {"v": 1, "kdf": {"name": "scrypt", "n": N, "r": R, "p": P, "salt": B64},
     "created": ISO, "host": ..., "user": ..., "label": ...,
     "nonce": B64, "wrapped": B64}

``wrapped`` is AES-256-GCM(scrypt(password), nonce, master key, aad = the file's other keys as
canonical JSON), so the label, host and parameters cannot be changed either. The name is the
SHA-256 of the file's bytes. scrypt at N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s) is
scrypt's interactive setting; ``BACKUPFLOW_SCRYPT_N`` lowers N for new key files (tests only).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from storage.backend import Backend
from storage.crypto.sealer import AeadSealer
from storage.errors import IntegrityError, InvalidInput, NotFound, PasswordRequired, WrongPassword
from storage.layout import KEYS, OBJECT_ID, object_id

SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1


@dataclass(frozen=True)
class MasterKey:
    """32 random bytes; every secret of an encrypted repository is derived from them."""

    secret: bytes

    @classmethod
    def new(cls) -> "MasterKey":
        return cls(secrets.token_bytes(32))

    def _derive(self, what: bytes, length: int = 32) -> bytes:
        return HKDF(hashes.SHA256(), length, salt=None, info=b"backupflow " + what).derive(self.secret)

    def sealer(self) -> AeadSealer:
        return AeadSealer(self._derive(b"encryption"), self._derive(b"id"))

    def chunker_seed(self) -> int:
        return int.from_bytes(self._derive(b"chunker", 8), "big") >> 1  # 63 bits, like an unencrypted seed


@dataclass(frozen=True)
class KeyInfo:
    """One key file, as ``backupflow key list`` shows it."""

    id: str
    created: str
    host: str
    user: str
    label: str
    kdf: dict
    in_use: bool = False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# Key-encryption keys already derived in this process: (salt, n, r, p, sha256 of the password)
# -> key. The salt is the key file's own random one, so an entry serves that key file and that
# password only: a wrong or changed password misses and is refused as before. A resident runner
# or a test opens one repository many times; scrypt each time would cost a tenth of a second or
# more per open. Holds nothing the open repository does not.
_KEK_CACHE: dict[tuple, bytes] = {}
_KEK_LOCK = threading.Lock()
_OPENED: set[tuple] = set()  # the entries that opened a key file (a right password)
_DERIVED = [0]  # scrypt runs in this process


def _kek_cache_key(password: str, kdf: dict) -> tuple:
    return (base64.b64decode(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]),
            hashlib.sha256(password.encode()).digest())


def _kek(password: str, kdf: dict) -> bytes:
    cache_key = _kek_cache_key(password, kdf)
    with _KEK_LOCK:
        got = _KEK_CACHE.get(cache_key)
    if got is None:
        salt, n, r, p, _ = cache_key
        got = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode())
        with _KEK_LOCK:
            _DERIVED[0] += 1
            if len(_KEK_CACHE) >= 64:  # a runner fed many wrong passwords keeps no pile of them
                _KEK_CACHE.clear()
                _OPENED.clear()
            _KEK_CACHE[cache_key] = got
    return got


def opened_keks() -> tuple[list[tuple[tuple, bytes]], int]:
    """The cache hook of a resident runner (deployments/runner.py), which keeps in its memory
    the keys that opened a key file in a command's process, so the commands it forks next skip
    scrypt: those (cache key, key) pairs, and how many scrypt runs this process made."""
    with _KEK_LOCK:
        return [(k, _KEK_CACHE[k]) for k in _OPENED if k in _KEK_CACHE], _DERIVED[0]


def remember_keks(entries: list[tuple[tuple, bytes]]) -> None:
    """Keep ``entries`` from :func:`opened_keks` of another process of this user."""
    with _KEK_LOCK:
        if len(_KEK_CACHE) + len(entries) > 64:
            _KEK_CACHE.clear()
            _OPENED.clear()
        _KEK_CACHE.update(entries)
        _OPENED.update(k for k, _ in entries)


def _opened(password: str, kdf: dict) -> None:
    with _KEK_LOCK:
        _OPENED.add(_kek_cache_key(password, kdf))


def _check_password(password: str | None) -> str:
    if not password:
        raise InvalidInput("The password is empty; give a password of at least one character.")
    return password


def create_key_file(backend: Backend, master: MasterKey, password: str, label: str | None = None) -> str:
    """Write a new key file wrapping ``master`` under ``password``; its id."""
    password = _check_password(password)
    given = os.environ.get("BACKUPFLOW_SCRYPT_N") or str(SCRYPT_N)
    n = int(given) if given.isdigit() else 0
    if n < 2 or n & (n - 1):
        raise InvalidInput(f"BACKUPFLOW_SCRYPT_N={given} is not a power of two; unset it or give one such as 32768.")
    kdf = {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(secrets.token_bytes(16))}
    doc: dict = {"v": 1, "kdf": kdf, "created": datetime.now(timezone.utc).isoformat(),
                 "host": socket.gethostname(), "user": _user(), "label": label or ""}
    nonce = secrets.token_bytes(12)
    wrapped = AESGCM(_kek(password, kdf)).encrypt(nonce, master.secret, _canonical(doc))
    _opened(password, kdf)
    data = json.dumps({**doc, "nonce": _b64(nonce), "wrapped": _b64(wrapped)}, indent=1).encode()
    key_id = hashlib.sha256(data).hexdigest()
    backend.save(KEYS + key_id, data)
    return key_id


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _read_key_file(backend: Backend, key_id: str) -> dict:
    data = backend.load(KEYS + key_id)
    if hashlib.sha256(data).hexdigest() != key_id:
        raise IntegrityError(f"Key file {key_id[:8]} is damaged (it does not match its hash).")
    try:
        doc = json.loads(data)
        base64.b64decode(doc["wrapped"], validate=True)
        kdf = doc["kdf"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"Key file {key_id[:8]} is damaged (it is not a key file).") from exc
    # Bounds keep a planted key file from asking scrypt for gigabytes of memory.
    if not (2 <= n <= 1 << 22 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise IntegrityError(f"Key file {key_id[:8]} is damaged (its scrypt parameters are out of range).")
    return doc


def _unwrap(doc: dict, password: str) -> MasterKey | None:
    body = {k: v for k, v in doc.items() if k not in ("nonce", "wrapped")}
    try:
        secret = AESGCM(_kek(password, doc["kdf"])).decrypt(
            base64.b64decode(doc["nonce"]), base64.b64decode(doc["wrapped"]), _canonical(body))
    except (InvalidTag, ValueError):
        return None
    _opened(password, doc["kdf"])
    return MasterKey(secret)


def key_ids(backend: Backend) -> list[str]:
    return sorted(i for i in (object_id(o.name) for o in backend.list(KEYS)) if OBJECT_ID.fullmatch(i))


def unlock(backend: Backend, password: str | None, where: str,
           accept: Callable[[MasterKey], bool] = lambda _: True) -> tuple[MasterKey, str]:
    """(master key, id of the key file it opened) for ``password``; PasswordRequired without
    one, WrongPassword when no key file opens with it (nothing is written either way).
    ``accept`` checks a master key against the config (a key file left by a lost race to
    create the repository wraps another one)."""
    if not password:
        raise PasswordRequired(f"{where} is encrypted; give its password (--password-file, BACKUPFLOW_PASSWORD_FILE "
                               "or BACKUPFLOW_PASSWORD).")
    ids = key_ids(backend)
    damaged = opened = 0
    for key_id in ids:
        try:
            doc = _read_key_file(backend, key_id)
        except (IntegrityError, NotFound):
            damaged += 1
            continue
        master = _unwrap(doc, password)
        if master is not None:
            opened += 1
            if accept(master):
                return master, key_id
    if not ids or damaged == len(ids):
        raise IntegrityError(f"{where} is encrypted but has no readable key file under {KEYS}; put the key files "
                             "back from a copy of the repository.")
    if opened:
        raise IntegrityError(f"The repository config of {where} does not open with the key the password opens "
                             "(damaged or replaced); put back the `config` object from a copy of the repository.")
    raise WrongPassword(f"The password does not open {where}; check the password (or its file).")


def damaged_key_files(backend: Backend) -> dict[str, str]:
    """Objects under ``keys/`` that are not intact key files: name -> one sentence why."""
    out = {}
    for o in backend.list(KEYS):
        key_id = object_id(o.name)
        if not OBJECT_ID.fullmatch(key_id) or o.name != KEYS + key_id:
            out[o.name] = f"{o.name} is not a key file (its name is not keys/<hash>); remove it"
            continue
        try:
            _read_key_file(backend, key_id)
        except IntegrityError as exc:
            out[o.name] = f"{exc.message} Its password no longer opens the repository; remove it " \
                          "(`backupflow key remove`) and add the key again."
        except NotFound:
            pass  # removed between the listing and the read
    return out


class KeyRing:
    """The key files of an open encrypted repository (``repo.keys``)."""

    def __init__(self, backend: Backend, master: MasterKey, in_use: str):
        self.backend = backend
        self.master = master
        self.in_use = in_use

    def list(self) -> list[KeyInfo]:
        out = []
        for key_id in key_ids(self.backend):
            try:
                doc = _read_key_file(self.backend, key_id)
            except (IntegrityError, NotFound):
                continue
            kdf = {k: v for k, v in doc["kdf"].items() if k != "salt"}
            out.append(KeyInfo(key_id, doc.get("created", ""), doc.get("host", ""), doc.get("user", ""),
                               doc.get("label", ""), kdf, key_id == self.in_use))
        return sorted(out, key=lambda k: (k.created, k.id))

    def add(self, new_password: str, label: str | None = None) -> str:
        """A new key file for ``new_password``; the others keep working."""
        return create_key_file(self.backend, self.master, new_password, label)

    def resolve(self, ref: str) -> str:
        """The full id of the key file ``ref`` (an id or unique prefix) names."""
        ref = (ref or "").strip().lower()
        matches = [i for i in key_ids(self.backend) if ref and i.startswith(ref)]
        if len(matches) != 1:
            what = "no key" if not matches else f"{len(matches)} keys"
            raise InvalidInput(f"{ref!r} matches {what}; name one key by its id from `backupflow key list`.")
        return matches[0]

    def remove(self, key_id: str, replacement: str | None = None) -> None:
        """Remove a key file. The last one is refused (the repository could never be opened
        again), and so is the one in use unless ``replacement`` names another to use instead."""
        key_id = self.resolve(key_id)
        others = [i for i in key_ids(self.backend) if i != key_id]
        if not others:
            raise InvalidInput("This is the repository's last key; add another key before removing it.")
        if key_id == self.in_use:
            if replacement is None:
                raise InvalidInput("This key is the one in use; open the repository with another key's password "
                                   "to remove it.")
            self.in_use = self.resolve(replacement)
        self.backend.remove(KEYS + key_id)

    def passwd(self, new_password: str) -> str:
        """Re-wrap the master key in use under ``new_password``: a new key file replaces the one
        in use (written first, so a failure leaves the old password working). Its id."""
        old = self.in_use
        label = ""
        try:
            label = _read_key_file(self.backend, old).get("label", "")
        except (IntegrityError, NotFound):
            pass
        new = create_key_file(self.backend, self.master, new_password, label)
        self.in_use = new
        self.backend.remove(KEYS + old)
        return new
