"""Encryption at rest: the master key, the key files that wrap it, and sealing of objects.

Vocabulary (docs/FORMAT.md, "encryption"):

- *master key*: 32 random bytes made at ``init``; HKDF-SHA-256 derives its subkeys: the
  *encryption key*, the *id key* (HMAC-SHA-256 for keyed chunk, tree and snapshot ids) and
  the chunker secret. It never leaves memory unwrapped.
- *key file*: ``keys/<sha256>``, the master key wrapped under a key-encryption key derived
  from one password with scrypt (parameters and salt recorded in the file). Several key files
  may wrap the same master key; any one password opens the repository.
- *sealer*: what the object layers call to seal and open an object and to compute content
  ids. :data:`PLAIN` does neither (unencrypted repositories, format version 1);
  :class:`AeadSealer` uses AES-256-GCM under a fresh subkey per object.

Invariants: nothing derived from a password or the master key is written except inside a key
file; every sealed object is authenticated together with its kind, so an object of one kind
cannot stand in for another, and hash-named objects are named by a keyed or ciphertext hash,
so one cannot stand in for another of the same kind.
"""

from storage.crypto.keys import KeyInfo, KeyRing, MasterKey, create_key_file, damaged_key_files, unlock
from storage.crypto.sealer import PLAIN, AeadSealer, Sealer, sealed_repository

__all__ = ["PLAIN", "AeadSealer", "KeyInfo", "KeyRing", "MasterKey", "Sealer", "create_key_file",
           "damaged_key_files", "sealed_repository", "unlock"]
