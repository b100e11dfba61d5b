"""The test suite's repository password. New repositories are encrypted by default, so
tests/conftest.py gives every process of the session this password through
BACKUPFLOW_PASSWORD_FILE (a 0600 file in the session's folder), as a user's environment would:
CLI runs, flows started in the test process, the session's runner. A test that reads a
repository the CLI or a flow created through the storage API opens it with
:func:`open_repository`; an unencrypted one ignores the password. Tests that build a
subprocess environment from scratch keep the variables in :data:`SUITE_ENV`."""

from __future__ import annotations

from typing import Any

from storage import Repository

PASSWORD = "the test suite's password"
# Kept by tests that drop BACKUPFLOW_* from a subprocess's environment. BACKUPFLOW_SCRYPT_N
# makes each new key file cheap (scrypt at N=2^15 would cost every test a tenth of a second).
SUITE_ENV = ("BACKUPFLOW_PASSWORD_FILE", "BACKUPFLOW_SCRYPT_N")


def open_repository(url: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Repository:
    return Repository.open(url, options, password=PASSWORD, **kwargs)
