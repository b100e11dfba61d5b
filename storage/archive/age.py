"""age encryption (https://age-encryption.org/v1) of archives, with a passphrase (scrypt
recipient), as streams: ``age -d ARCHIVE.tar.gz.age | tar -xz`` restores one.

Written here on top of ``cryptography`` because the age library binding (pyrage) takes and
returns whole byte strings for passphrases, and an archive may not fit in memory; the tests
check both directions against pyrage, so the format is age's own.

The format, in short: a text header (``age-encryption.org/v1``, one ``-> scrypt SALT LOGN``
stanza wrapping a random 16-byte file key with ChaCha20-Poly1305 under scrypt(passphrase), and
``--- MAC``, an HMAC-SHA256 of the header under a key derived from the file key), then a
16-byte nonce and the payload: 64 KiB chunks, each sealed with ChaCha20-Poly1305 under
HKDF(file key, nonce, "payload"), its nonce an 11-byte counter and a last-chunk flag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import IntegrityError, WrongPassword

INTRO = b"age-encryption.org/v1\n"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
CHUNK = 64 * 1024
TAG = 16
LOG_N = 18           # age's own default work factor (scrypt N = 2**18, 256 MiB, about a second)
MAX_LOG_N = 22       # what a reader accepts, as age does


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(key)


def work_factor() -> int:
    """log2 of scrypt's N for new archives: age's 18, or lower where ``BACKUPFLOW_SCRYPT_N``
    (the key files' test-only setting, storage/crypto/keys.py) says so; never higher."""
    given = os.environ.get("BACKUPFLOW_SCRYPT_N", "")
    n = int(given) if given.isdigit() else 0
    return min(LOG_N, n.bit_length() - 1) if n >= 2 and not n & (n - 1) else LOG_N


def _scrypt(passphrase: str, salt: bytes, log_n: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(passphrase.encode(), salt=SCRYPT_LABEL + salt, n=n, r=8, p=1, maxmem=130 * n * 8 + (1 << 20),
                          dklen=32)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Encryptor:
    """A write-only stream: what is written to it goes, age-encrypted, into ``sink``."""

    def __init__(self, sink: Any, passphrase: str, log_n: int | None = None):
        self.sink, self.buf, self.counter, self.closed = sink, bytearray(), 0, False
        log_n = work_factor() if log_n is None else log_n
        file_key, salt = os.urandom(16), os.urandom(16)
        wrapped = ChaCha20Poly1305(_scrypt(passphrase, salt, log_n)).encrypt(b"\x00" * 12, file_key, None)
        header = INTRO + b"-> scrypt " + _b64(salt) + b" " + str(log_n).encode() + b"\n" + _b64(wrapped) + b"\n---"
        mac = hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
        nonce = os.urandom(16)
        sink.write(header + b" " + _b64(mac) + b"\n" + nonce)
        self.aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))

    def write(self, data) -> int:
        self.buf += data
        # keep the last chunk back: only close() knows it is the last one
        while len(self.buf) > CHUNK:
            self._seal(bytes(self.buf[:CHUNK]), last=False)
            del self.buf[:CHUNK]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        self.sink.write(self.aead.encrypt(_nonce(self.counter, last), chunk, None))
        self.counter += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self.buf), last=True)
            self.buf.clear()
            self.closed = True


def _header(src: BinaryIO) -> tuple[list[list[bytes]], bytes, bytes]:
    """(stanzas as [args..., body], header bytes up to '---', MAC) read from ``src``."""
    def line() -> bytes:
        raw = b""
        while not raw.endswith(b"\n") and len(raw) < 4096:  # byte by byte: the payload follows
            byte = src.read(1)
            if not byte:
                break
            raw += byte
        if not raw.endswith(b"\n"):
            raise IntegrityError("it is not an age file (its header ends early)")
        return raw
    seen = line()
    if seen != INTRO:
        raise IntegrityError("it is not an age v1 file")
    stanzas: list[list[bytes]] = []
    while True:
        raw = line()
        seen += raw
        if raw.startswith(b"--- "):
            return stanzas, seen[: len(seen) - len(raw) + 3], _unb64(raw[4:].strip())
        if not raw.startswith(b"-> "):
            raise IntegrityError("its age header is malformed")
        args, body = raw[3:].split(), b""
        while True:
            part = line()
            seen += part
            body += part.strip()
            if len(part.strip()) < 64:
                break
        stanzas.append([*args, _unb64(body)])


def _file_key(stanzas: list[list[bytes]], passphrase: str) -> bytes:
    scrypt = [s for s in stanzas if s[0] == b"scrypt"]
    if len(scrypt) != 1 or len(stanzas) != 1:
        raise IntegrityError("it is not encrypted with a passphrase alone")
    _, salt, log_n, body = scrypt[0]
    if not log_n.isdigit() or int(log_n) > MAX_LOG_N:
        raise IntegrityError("its scrypt work factor is missing or too large")
    try:
        return ChaCha20Poly1305(_scrypt(passphrase, _unb64(salt), int(log_n))).decrypt(b"\x00" * 12, body, None)
    except InvalidTag:
        raise WrongPassword("The password does not decrypt this archive; give the repository's password.") from None


class Decryptor:
    """A read-only stream of the plaintext of the age file ``src`` (checked chunk by chunk)."""

    def __init__(self, src: BinaryIO, passphrase: str):
        stanzas, header, mac = _header(src)
        file_key = _file_key(stanzas, passphrase)
        if not hmac.compare_digest(hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest(), mac):
            raise IntegrityError("its age header was changed")
        nonce = src.read(16)
        self.src, self.aead = src, ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self.counter, self.buf, self.done = 0, b"", False
        self.ahead = src.read(CHUNK + TAG)

    def _next(self) -> None:
        sealed, self.ahead = self.ahead, self.src.read(CHUNK + TAG)
        last = not self.ahead
        try:
            self.buf += self.aead.decrypt(_nonce(self.counter, last), sealed, None)
        except InvalidTag:
            raise IntegrityError(f"its age chunk {self.counter} is damaged or the file was cut short") from None
        self.counter += 1
        self.done = last

    def read(self, n: int = -1) -> bytes:
        while not self.done and (n < 0 or len(self.buf) < n):
            self._next()
        if n < 0:
            n = len(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self) -> None:
        self.src.close()
