"""Errors raised by the backupflow engine.

One base class, :class:`BackupError`; each subclass names what went wrong and carries
the process exit code the CLI uses for it (borg keeps the code on the class for the same
reason: scripts can tell a missing snapshot from a damaged repository without parsing text).

Transient errors are the only ones any retry layer may retry; everything else fails at once.
"""

from __future__ import annotations

import errno


class BackupError(Exception):
    """Something went wrong in backupflow."""

    exit_code = 1
    transient = False

    def __init__(self, message: str | None = None, details: dict | None = None):
        super().__init__(message or (self.__doc__ or "").strip())
        self.details = details or {}

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidConfig(BackupError):
    """The configuration or a command-line option is not valid."""

    exit_code = 2


class InvalidInput(BackupError):
    """An argument names something that does not exist or cannot be used."""

    exit_code = 2


class NotFound(BackupError):
    """The requested object, snapshot or repository does not exist."""

    exit_code = 3


class AlreadyExists(BackupError):
    """An object that is written once already exists with other content."""

    exit_code = 4


class NotARepository(BackupError):
    """The location holds something that is not a backupflow repository."""

    exit_code = 5


class IntegrityError(BackupError):
    """Stored data does not match its hash: the repository is damaged."""

    exit_code = 6


class Locked(BackupError):
    """Another operation holds a lock that this one needs."""

    exit_code = 7


class ChainGone(Locked):
    """The chain an incremental or differential backup was based on was forgotten while it
    ran; nothing was committed (exit code of :class:`Locked`: another operation got in the way)."""


class PermanentError(BackupError):
    """The storage refused the operation and retrying will not help."""

    exit_code = 8


class TransientError(BackupError):
    """The storage failed in a way that may succeed on a retry."""

    exit_code = 9
    transient = True


class Unreachable(TransientError):
    """A network failure before the storage service ever answered, after retrying for the
    first-contact time (storage.backend.retry): most likely a wrong endpoint or a network that
    is down. Exit code 9 like any network failure, but not retried again by the layers above,
    so the person who mistyped an endpoint hears of it in seconds, not minutes."""

    transient = False


def no_answer(where: str, seconds: float, why: str) -> str:
    """The sentence for a storage service that did not answer within its first-contact time."""
    return f"No answer from {where} within {seconds:g} s ({why}); check the endpoint, the network and any proxy."


class ServerUnreachable(BackupError):
    """The Prefect server (PREFECT_API_URL) did not answer. Exit code 9 like any network failure;
    the operation's own outcome, when it got that far, is reported beside it (flows.cli.server_loss)."""

    exit_code = 9


class PathEscape(BackupError):
    """A snapshot entry would be written outside the restore target."""

    exit_code = 10


class ApprovalRejected(BackupError):
    """A human rejected the operation, or nobody approved it in time."""

    exit_code = 11


class ApprovalTimeout(ApprovalRejected):
    """Nobody approved the operation before the approval timeout."""

    exit_code = 12


class RestoreIncomplete(BackupError):
    """A restore finished but left out the files it names (their data is damaged or missing,
    or they could not be written); everything else was restored."""

    exit_code = 13

    @classmethod
    def of(cls, result: dict) -> "RestoreIncomplete":
        """The sentence for a restore result (RestoreResult.to_dict()) that left files out."""
        left = result.get("not_restored") or {}
        shown = "; ".join(f"{p}: {why}" for p, why in list(left.items())[:3])
        more = f"; and {len(left) - 3} more (see --json)" if len(left) > 3 else ""
        return cls(f"{len(left)} file(s) of snapshot {result['snapshot_id'][:8]} could not be restored "
                   f"({shown}{more}); "
                   f"everything else is in {result['target']}.", details=result)


class IncompleteSnapshot(BackupError):
    """The snapshot was saved, but it lacks files or directories that could not be read (no
    permission, a path longer than PATH_MAX); its report names each one. restic calls this an
    incomplete snapshot (its exit code 3). Raised by the CLI after the snapshot is committed,
    never before: what could be read is backed up."""

    exit_code = 14


class WrongPassword(BackupError):
    """The password opens none of the repository's key files; nothing was read or written."""

    exit_code = 15


class PasswordRequired(BackupError):
    """The repository is encrypted and no password was given; nothing was read or written."""

    exit_code = 16


def is_retryable(exc: BaseException) -> bool:
    """True only for errors that a retry may cure (used by every retry layer)."""
    return isinstance(exc, BackupError) and exc.transient


# What link(2) fails with on a filesystem that has no hard links (FAT, exFAT, some SMB mounts).
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})
# What symlink(2) fails with on a filesystem that has no symlinks (FAT, exFAT).
NO_SYMLINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


class BackupsDisabled(BackupError):
    """The configuration says ``enable_backups = false``: nothing that writes a backup,
    repository or archive runs until it says true again. Nothing was changed."""

    exit_code = 17
