"""The CLI's side of passwords: the ``--password-file`` flag, and the prompt at the terminal.

``--password-file PATH`` may stand anywhere on the command line (like ``--no-runner``); it is
taken off before typer parses the rest, so every command, present and future, honours it.
The prompt reads the command's own stdin with echo off, never ``/dev/tty``: with the resident
runner, the command's stdin is the client's terminal, while the runner's controlling
terminal (if ``backupflow serve`` started it in one) is somebody else's.
"""

from __future__ import annotations

import sys
import termios
from typing import Any

from storage import Repository
from storage.backend import display_url
from storage.errors import InvalidConfig, NotFound, PasswordRequired
from tasks import passwords


def take_password_file(argv: list[str]) -> list[str]:
    """``argv`` without ``--password-file PATH`` (before ``--``); the path becomes this
    process's first password source."""
    end = argv.index("--") if "--" in argv else len(argv)
    out: list[str] = []
    i = 0
    while i < end:
        arg = argv[i]
        if arg == passwords.PASSWORD_FILE_FLAG:
            if i + 1 >= end:
                raise InvalidConfig("--password-file needs a path; write --password-file PATH.")
            passwords.use_password_file(argv[i + 1])
            i += 2
            continue
        if arg.startswith(passwords.PASSWORD_FILE_FLAG + "="):
            passwords.use_password_file(arg.split("=", 1)[1])
        else:
            out.append(arg)
        i += 1
    return out + argv[end:]


def at_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def read_hidden(prompt: str) -> str:
    """One line typed at this command's terminal (its stdin) without echo; Ctrl-C interrupts."""
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~termios.ECHO
    # Echo off before the prompt shows: what is typed after it must never appear.
    termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        line = sys.stdin.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)
        sys.stderr.write("\n")
        sys.stderr.flush()
    if not line:
        raise InvalidConfig("No password was typed (the input ended); type it, or give it with --password-file.")
    return line.rstrip("\r\n")


def ask_new_password(what: str) -> str:
    """A new password, typed twice at the terminal."""
    first = read_hidden(f"New password for {what}: ")
    if not first:
        raise InvalidConfig("The password is empty; type a password of at least one character.")
    if read_hidden("Type it again: ") != first:
        raise InvalidConfig("The two passwords differ; nothing was changed, run the command again.")
    return first


def new_password(new_password_file: str | None, what: str) -> str:
    """The new password of ``key add`` / ``key passwd`` / ``init``: from its file, or typed twice."""
    if new_password_file:
        return passwords.read_password_file(new_password_file, "--new-password-file")
    if not at_terminal():
        raise InvalidConfig("A new password is needed; give it with --new-password-file PATH (or run the command "
                            "at a terminal to type it).")
    return ask_new_password(what)


ENCRYPTION_HELP = ("on (default): the new repository is encrypted, with a password from the usual sources "
                   "(README: Encryption); none: unencrypted, readable by whoever can read its storage.")


def check_encryption(encryption: str) -> passwords.Encryption:
    if encryption not in ("on", "none"):
        raise InvalidConfig(f"--encryption {encryption} is not known; give on (the default) or none.")
    return "on" if encryption == "on" else "none"


def password_for_new(url: str, read_block) -> str:
    """The password of a repository being created: from the sources, else typed twice."""
    password = passwords.find_password(read_block)
    if password is not None:
        return password
    if not at_terminal():
        raise passwords.missing_password(display_url(url), True)
    return ask_new_password(f"the new encrypted repository {display_url(url)}")


def no_repository_yet(url: str, options: dict[str, Any]) -> bool:
    """Whether a backup into ``url`` would create the repository (read before it runs)."""
    try:
        Repository.open(url, options).close()
    except NotFound:
        return True
    except PasswordRequired:
        pass
    return False


def prompt_if_needed(url: str, options: dict[str, Any], creating: bool) -> None:
    """Before a command runs a flow on a repository (or, ``creating``, makes an encrypted one):
    when no source has a password, none is configured for the tasks to read (a command, a
    Secret block) and a person sits at the terminal, ask them, once, if the repository needs
    one. Everything else is left to the tasks, which name every source when they find none.
    ``options`` are complete (secrets and Secret block read)."""
    if not at_terminal() or passwords.given_password() is not None or any(passwords.configured_sources()):
        return
    where = display_url(url)
    try:
        Repository.open(url, options).close()
    except PasswordRequired:
        passwords.use_password(read_hidden(f"Password for {where}: "))
    except NotFound:
        if creating:
            passwords.use_password(ask_new_password(f"the new encrypted repository {where}"))


__all__ = ["ask_new_password", "at_terminal", "check_encryption", "ENCRYPTION_HELP", "new_password",
           "no_repository_yet", "password_for_new", "prompt_if_needed", "read_hidden", "take_password_file"]
