"""Embedded mode (no PREFECT_API_URL): a restore over existing files asks at the terminal."""

from __future__ import annotations

import os
import select
import subprocess
import time

from storage import Repository
from tests.approver_keys import make_key, toml_value
from tests.flows.cli_process import BACKUPFLOW
from tests.suite_password import SUITE_ENV


class Terminal:
    """The CLI on a pseudo-terminal, answered like a person would."""

    def __init__(self, args, env, cwd):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen([BACKUPFLOW, *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
        os.close(slave)
        self.screen = ""

    def expect(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            assert time.monotonic() < deadline, f"never saw {text!r}:\n{self.screen[-3000:]}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    raise AssertionError(f"terminal closed before {text!r}:\n{self.screen[-3000:]}") from None

    def answer(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        code = self.proc.wait(timeout=max(1, deadline - time.monotonic()))
        os.close(self.master)
        return code


def _setup(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("as backed up\n")
    repo = tmp_path / "repo"
    Repository.init(str(repo)).backup(str(src))
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.txt").write_text("newer work, not backed up\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "BACKUPFLOW_"))
           or k in SUITE_ENV}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), BACKUPFLOW_AUDIT_PATH=str(tmp_path / "audit"))
    return repo, target, env


def test_embedded_restore_over_files_is_approved_at_the_prompt(tmp_path):
    repo, target, env = _setup(tmp_path)
    term = Terminal(["restore", "latest", str(target), "-r", str(repo)], env, tmp_path)
    term.expect("Approve? [y/N]")
    assert "HIGH" in term.screen.upper() and "overwrites 1 existing file" in term.screen
    term.answer("y")
    term.expect("Your name")
    term.answer("alice")
    term.expect("Reason")
    term.answer("checked the snapshot")
    assert term.finish() == 0, term.screen[-3000:]
    assert (target / "notes.txt").read_text() == "as backed up\n"


def test_embedded_restore_rejected_at_the_prompt_changes_nothing(tmp_path):
    repo, target, env = _setup(tmp_path)
    term = Terminal(["restore", "latest", str(target), "-r", str(repo)], env, tmp_path)
    term.expect("Approve? [y/N]")
    term.answer("n")
    term.expect("Your name")
    term.answer("alice")
    term.expect("Reason")
    term.answer("keep my newer work")
    assert term.finish() == 11, term.screen[-3000:]
    assert "rejected" in term.screen
    assert (target / "notes.txt").read_text() == "newer work, not backed up\n"


def test_a_policy_that_needs_authentication_takes_a_signed_answer_at_the_prompt(tmp_path):
    repo, target, env = _setup(tmp_path)
    bob_key, bob_pub = make_key(tmp_path, "bob")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[guardian]\napprovers = [\"bob\"]\napprover_keys = {toml_value({'bob': bob_pub})}\n")
    env["BACKUPFLOW_CONFIG"] = str(cfg)
    term = Terminal(["restore", "latest", str(target), "-r", str(repo)], env, tmp_path)
    for name, key in (("bob", ""), ("bob", str(bob_key))):  # unsigned first: refused, then signed
        term.expect("Approve? [y/N]")
        term.answer("y")
        term.expect("Your name")
        term.answer(name)
        term.expect("Reason")
        term.answer("checked")
        term.expect("Your ed25519 private key")
        term.screen = ""
        term.answer(key)
        if not key:
            term.expect("Try another approver?")
            term.answer("y")
    assert term.finish() == 0, term.screen[-3000:]
    assert (target / "notes.txt").read_text() == "as backed up\n"
