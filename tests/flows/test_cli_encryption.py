"""Encryption as a user meets it at the command line: on by default, passwords from each
source, the prompt at the client's terminal (through the resident runner), a wrong or missing
password in one sentence with its own exit code and nothing written, and `backupflow key`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from storage import Repository
from tests.flows.cli_process import cli_env, run
from tests.flows.test_guardian_prompt import Terminal

pytestmark = pytest.mark.prefect

WRONG_PASSWORD, PASSWORD_REQUIRED = 15, 16


@pytest.fixture
def work(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("secret plans\n")
    (tmp_path / "pw").write_text("correct horse\n")
    (tmp_path / "other-pw").write_text("battery staple\n")
    env = cli_env(prefect_server, tmp_path)
    env.pop("BACKUPFLOW_PASSWORD_FILE")  # not the suite's password: no source at all unless a test gives one
    return tmp_path, src, env


def _state(repo: Path) -> dict[str, tuple[int, int]]:
    """Every object but the audit log's anchors (a refused attempt is on the record, as it should be)."""
    return {str(p.relative_to(repo)): (p.stat().st_size, p.stat().st_mtime_ns) for p in repo.rglob("*")
            if p.is_file() and not str(p.relative_to(repo)).startswith("audit/")}


def test_a_first_backup_creates_an_encrypted_repository_and_stats_says_so(work):
    tmp, src, env = work
    repo = tmp / "repo"
    run(["backup", str(src), "-r", str(repo), "--password-file", str(tmp / "pw")], env, tmp).ok()
    stats = run(["stats", "-r", str(repo), "--json", "--password-file", str(tmp / "pw")], env, tmp).json()
    assert stats["encryption"] != "none" and stats["snapshots"] == 1
    text = run(["stats", "-r", str(repo), "--password-file", str(tmp / "pw")], env, tmp).ok().stdout
    assert "encryption" in text and stats["encryption"] in text
    assert Repository.open(str(repo), password="correct horse").encrypted


def test_a_wrong_password_is_one_sentence_exit_15_and_writes_nothing(work):
    tmp, src, env = work
    repo = tmp / "repo"
    run(["init", "-r", str(repo), "--password-file", str(tmp / "pw")], env, tmp).ok()
    run(["backup", str(src), "-r", str(repo), "--password-file", str(tmp / "pw")], env, tmp).ok()
    before = _state(repo)
    for args in (["backup", str(src)], ["snapshots"], ["key", "add", "--new-password-file", str(tmp / "pw")]):
        res = run([*args, "-r", str(repo), "--password-file", str(tmp / "other-pw")], env, tmp)
        assert "does not open" in res.one_sentence_error() and res.returncode == WRONG_PASSWORD, args
    assert _state(repo) == before


def test_no_password_anywhere_is_one_sentence_naming_every_source_exit_16(work):
    tmp, src, env = work
    repo = tmp / "repo"
    res = run(["backup", str(src), "-r", str(repo)], env, tmp)  # stdin is not a terminal: no prompt
    sentence = res.one_sentence_error()
    assert res.returncode == PASSWORD_REQUIRED
    assert not repo.exists() or not any(repo.iterdir())
    for source in ("--password-file", "BACKUPFLOW_PASSWORD_FILE", "BACKUPFLOW_PASSWORD", "password_command",
                   "password_secret_block", "--encryption none"):
        assert source in sentence
    run(["init", "-r", str(repo), "--password-file", str(tmp / "pw")], env, tmp).ok()
    for args in (["backup", str(src)], ["stats"], ["verify"]):
        res = run([*args, "-r", str(repo)], env, tmp)
        assert "is encrypted" in res.one_sentence_error() and res.returncode == PASSWORD_REQUIRED


def test_each_source_opens_the_repository_and_the_first_one_wins(work):
    tmp, src, env = work
    repo = tmp / "repo"
    run(["init", "-r", str(repo), "--password-file", str(tmp / "pw")], env, tmp).ok()
    script = tmp / "pw-tool.py"
    script.write_text("print('correct horse')\n")
    config = tmp / "config.toml"
    config.write_text(f"[backup]\npassword_command = {shlex.join([sys.executable, str(script)])!r}\n")
    good, bad = str(tmp / "pw"), str(tmp / "other-pw")
    cases = [  # (extra environment, extra arguments, opens?): the first source given is the one used
        ({"BACKUPFLOW_PASSWORD_FILE": bad}, ["--password-file", good], True),
        ({"BACKUPFLOW_PASSWORD_FILE": good, "BACKUPFLOW_PASSWORD": "battery staple"}, [], True),
        ({"BACKUPFLOW_PASSWORD": "battery staple", "BACKUPFLOW_CONFIG": str(config)}, [], False),
        ({"BACKUPFLOW_CONFIG": str(config)}, [], True),
    ]
    for extra, args, opens in cases:  # (the order of all six: tests/tasks/test_passwords.py)
        command = ["backup", str(src)] if extra.get("BACKUPFLOW_CONFIG") else ["snapshots"]
        res = run([*command, "-r", str(repo), *args], {**env, **extra}, tmp)
        assert (res.returncode == 0) is opens, (extra, args, res.stderr)
        if not opens:
            assert res.returncode == WRONG_PASSWORD


def test_an_unencrypted_repository_needs_encryption_none_says_so_once_and_keeps_working(work):
    tmp, src, env = work
    repo = tmp / "plain"
    first = run(["backup", str(src), "-r", str(repo), "--encryption", "none"], env, tmp).ok()
    assert "UNENCRYPTED" in first.stderr
    second = run(["backup", str(src), "-r", str(repo), "--encryption", "none"], env, tmp).ok()
    assert "UNENCRYPTED" not in second.stderr
    # needs no password, ignores one given
    assert run(["stats", "-r", str(repo), "--json", "--password-file", str(tmp / "pw")], env,
               tmp).json()["encryption"] == "none"
    assert not Repository.open(str(repo)).encrypted
    res = run(["key", "list", "-r", str(repo)], env, tmp)
    assert "not encrypted" in res.one_sentence_error()
    init = run(["init", "-r", str(tmp / "plain2"), "--encryption", "none", "--json"], env, tmp)
    assert init.json()["encrypted"] is False and "UNENCRYPTED" in init.stderr
    assert "give on" in run(["init", "-r", str(tmp / "x"), "--encryption", "aes"], env, tmp).one_sentence_error()


def test_keys_add_remove_passwd_through_the_cli(work):
    tmp, src, env = work
    repo = str(tmp / "repo")
    first, second, third = tmp / "pw", tmp / "other-pw", tmp / "third-pw"
    third.write_text("third one\n")
    run(["backup", str(src), "-r", repo, "--password-file", str(first)], env, tmp).ok()

    def keys(pw: Path) -> list[dict]:
        return run(["key", "list", "-r", repo, "--json", "--password-file", str(pw)], env, tmp).json()["keys"]

    (only,) = keys(first)
    assert only["in_use"] and "n" in only["kdf"]
    res = run(["key", "add", "-r", repo, "--password-file", str(first)], env, tmp)  # no file, no terminal
    assert "--new-password-file" in res.one_sentence_error()
    added = run(["key", "add", "-r", repo, "--label", "laptop", "--new-password-file", str(second), "--json",
                 "--password-file", str(first)], env, tmp).json()["added"]
    listed = keys(second)
    assert {k["id"] for k in listed} == {only["id"], added}
    assert [k["label"] for k in listed if k["in_use"]] == ["laptop"]
    # the last key is never removed; the one in use only with another key's password
    run(["key", "remove", only["id"][:8], "-r", repo, "--password-file", str(second)], env, tmp).ok()
    res = run(["key", "remove", added[:8], "-r", repo, "--password-file", str(second)], env, tmp)
    assert "last key" in res.one_sentence_error()
    assert run(["snapshots", "-r", repo, "--password-file", str(first)], env, tmp).returncode == WRONG_PASSWORD
    changed = run(["key", "passwd", "-r", repo, "--new-password-file", str(third), "--json",
                   "--password-file", str(second)], env, tmp).json()
    assert changed["old"] == added and changed["new"] != added
    assert run(["snapshots", "-r", repo, "--password-file", str(second)], env, tmp).returncode == WRONG_PASSWORD
    snaps = run(["snapshots", "-r", repo, "--json", "--password-file", str(third)], env, tmp).json()["snapshots"]
    assert len(snaps) == 1
    run(["restore", "latest", str(tmp / "out"), "-r", repo, "--password-file", str(third)], env, tmp).ok()
    assert (tmp / "out" / "notes.txt").read_text() == "secret plans\n"
    events = [json.loads(line) for p in sorted((tmp / "audit").rglob("*.jsonl")) for line in p.read_text().splitlines()]
    kinds = [e["type"] for e in events if e["type"].startswith("key.")]
    assert kinds == ["key.added", "key.removed", "key.changed"]
    assert not any(word in json.dumps(events) for word in ("correct horse", "battery staple", "third one"))


def test_the_prompt_appears_at_the_clients_terminal_through_the_runner(work):
    tmp, src, env = work
    repo = str(tmp / "repo")
    term = Terminal(["backup", str(src), "-r", repo], env, tmp)  # a first backup: a new password, twice
    term.expect("New password for")
    term.answer("typed at the terminal")
    term.expect("Type it again")
    term.answer("typed at the terminal")
    assert term.finish() == 0, term.screen[-3000:]
    assert "typed at the terminal" not in term.screen  # never echoed
    term = Terminal(["verify", "-r", repo], env, tmp)  # a flow command through the runner
    term.expect("Password for")
    term.answer("typed at the terminal")
    assert term.finish() == 0, term.screen[-3000:]
    assert "no problems found" in term.screen
    term = Terminal(["snapshots", "-r", repo], env, tmp)  # a read-only command in its own process
    term.expect("Password for")
    term.answer("not it")
    assert term.finish() == WRONG_PASSWORD
    assert "does not open" in term.screen and "not it" not in term.screen
    term = Terminal(["backup", str(src), "-r", str(tmp / "repo2")], env, tmp)
    term.expect("New password for")
    term.answer("one")
    term.expect("Type it again")
    term.answer("two")
    assert term.finish() == 2 and "differ" in term.screen
    assert not (tmp / "repo2").exists() or not any((tmp / "repo2").iterdir())
