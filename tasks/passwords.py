"""Where a repository's password comes from, in this order (README, "Encryption"):

1. ``--password-file PATH`` on the command line (:func:`use_password_file`),
2. ``BACKUPFLOW_PASSWORD_FILE`` (a file holding the password),
3. ``BACKUPFLOW_PASSWORD``,
4. ``[backup] password_command`` in the config (a command that prints it, run without a shell),
5. ``[backup] password_secret_block`` in the config (a Prefect Secret block, read inside the
   task like the cloud credentials: the caller passes the reader, so this module never
   imports Prefect and the read-only commands stay fast),
6. a prompt at the terminal (the CLI only: :mod:`flows.cli.password_prompt`).

A password never travels as a flow or task parameter, and is never logged or written
anywhere but into a key file's scrypt: the CLI keeps the one it read or was typed in this
process (:func:`use_password`); tasks look it up here when they open the repository.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Literal

from storage import Repository
from storage.backend import display_url
from storage.config import Settings, load_settings
from storage.errors import InvalidConfig, NotFound, PasswordRequired

Encryption = Literal["on", "none"]  # "on": a new repository is encrypted (the default)

PASSWORD_FILE_ENV = "BACKUPFLOW_PASSWORD_FILE"
PASSWORD_ENV = "BACKUPFLOW_PASSWORD"
PASSWORD_FILE_FLAG = "--password-file"
COMMAND_TIMEOUT = 120.0  # a password manager may ask its own user first

# Every place looked in, in order: the sentence a missing password ends with.
WHERE = ("--password-file, BACKUPFLOW_PASSWORD_FILE, BACKUPFLOW_PASSWORD, [backup] password_command or "
         "[backup] password_secret_block in the config, or a prompt at a terminal")

_LOCK = threading.Lock()
_GIVEN: dict[str, str] = {}  # "file": a --password-file path, "password": one typed or set by code


def use_password_file(path: str) -> None:
    """``--password-file PATH`` for the rest of this process (the first source)."""
    with _LOCK:
        _GIVEN["file"] = os.path.abspath(path)


def use_password(password: str | None) -> None:
    """A password typed at the prompt, or given by code, for the rest of this process."""
    with _LOCK:
        if password is None:
            _GIVEN.pop("password", None)
        else:
            _GIVEN["password"] = password


def forget_given() -> None:
    with _LOCK:
        _GIVEN.clear()


def read_password_file(path: str, what: str) -> str:
    """The password in a file: its first line, without the line end."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
        raise InvalidConfig(f"The password file {path} ({what}) cannot be read ({reason}); fix the path.") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise InvalidConfig(f"The password file {path} ({what}) is empty; write the password on its first line.")
    return password


def run_password_command(command: str) -> str:
    """What ``[backup] password_command`` prints on its first line (run without a shell)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidConfig(f"[backup] password_command cannot be split into words ({exc}); fix its quoting.") from None
    if not argv:
        raise InvalidConfig("[backup] password_command is empty; give a command that prints the password.")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = f"it did not finish within {COMMAND_TIMEOUT:g} s" if isinstance(exc, subprocess.TimeoutExpired) \
            else exc.strerror or type(exc).__name__
        raise InvalidConfig(f"[backup] password_command {argv[0]!r} could not run ({why}); fix the command.") from None
    # Its stderr is not repeated: a password manager may print there what it should not.
    if proc.returncode != 0:
        raise InvalidConfig(f"[backup] password_command {argv[0]!r} exited with code {proc.returncode}; "
                            "fix the command.")
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise InvalidConfig(f"[backup] password_command {argv[0]!r} printed no password; fix the command.")
    return lines[0]


def given_password() -> str | None:
    """The password from the sources read in this process or its environment (1-3), or None."""
    with _LOCK:
        given = dict(_GIVEN)
    if "file" in given:
        return read_password_file(given["file"], PASSWORD_FILE_FLAG)
    if "password" in given:
        return given["password"]
    if os.environ.get(PASSWORD_FILE_ENV):
        return read_password_file(os.environ[PASSWORD_FILE_ENV], PASSWORD_FILE_ENV)
    return os.environ.get(PASSWORD_ENV) or None


def configured_sources(settings: Settings | None = None) -> tuple[str | None, str | None]:
    """(password_command, password_secret_block) of the config."""
    b = (settings or load_settings()).backup
    return b.password_command or None, b.password_secret_block or None


def find_password(read_block: Callable[[str], str] | None = None, settings: Settings | None = None) -> str | None:
    """The first password of sources 1-5 (the Secret block only with a ``read_block``), or None."""
    password = given_password()
    if password is not None:
        return password
    command, block = configured_sources(settings)
    if command:
        return run_password_command(command)
    if block and read_block is not None:
        return read_block(block)
    return None


def unencrypted_notice(where: str) -> str:
    return (f"created {where} UNENCRYPTED (--encryption none): whoever can read its storage can read every file "
            "backed up into it.")


def missing_password(where: str, creating: bool) -> PasswordRequired:
    if creating:
        return PasswordRequired(f"A new repository at {where} is encrypted, so it needs a password; give one with "
                                f"{WHERE} (or create an unencrypted one with --encryption none).")
    return PasswordRequired(f"{where} is encrypted and no password was found; give it with {WHERE}.")


def open_repository(url: str, options: dict[str, Any] | None = None, create: bool = False,
                    encryption: Encryption = "on", read_block: Callable[[str], str] | None = None,
                    notice: Callable[[str], None] | None = None, settings: Settings | None = None,
                    **init_args: Any) -> Repository:
    """Open the repository at ``url`` with the first password the sources give; with
    ``create``, make one in an empty location: encrypted unless ``encryption`` is "none".

    The cheap sources (1-3) are read first; the command and the Secret block only when an
    encrypted repository needs them, so an unencrypted one never runs a password manager.
    Raises PasswordRequired naming every source when none has a password, WrongPassword
    (from the engine) when the password opens no key file; nothing is written either way."""
    where = display_url(url)
    password = given_password()
    if create and encryption == "none":
        try:
            return Repository.open(url, options, password=password)
        except NotFound:
            repo = Repository.open(url, options, create=True, **init_args)
            if notice is not None and not repo.encrypted:
                notice(unencrypted_notice(where))
            return repo
        except PasswordRequired:
            password = find_password(read_block, settings)
            if password is None:
                raise missing_password(where, False) from None
            return Repository.open(url, options, password=password)
    if password is None and create:
        password = find_password(read_block, settings)
    try:
        return Repository.open(url, options, create=create and password is not None, password=password,
                               **init_args)
    except PasswordRequired:
        if password is None:
            password = find_password(read_block, settings)
        if password is None:
            raise missing_password(where, False) from None
        return Repository.open(url, options, password=password)
    except NotFound:
        if create and password is None:
            raise missing_password(where, True) from None
        raise


__all__ = ["configured_sources", "Encryption", "find_password", "forget_given", "given_password",
           "missing_password", "open_repository", "PASSWORD_ENV", "PASSWORD_FILE_ENV", "PASSWORD_FILE_FLAG",
           "read_password_file", "run_password_command", "unencrypted_notice", "use_password",
           "use_password_file", "WHERE"]
