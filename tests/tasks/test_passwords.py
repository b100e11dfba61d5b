"""Where the repository password comes from, and in which order (tasks/passwords.py): each
source alone, each one winning over every later one, and one sentence for each way a source
can be broken."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from flows.cli import runner_client
from flows.cli.password_prompt import take_password_file
from storage.config import load_settings
from storage.errors import InvalidConfig
from tasks import passwords


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Every source 1-5 set up with its own password; a test removes the ones it wants gone."""
    for name in (passwords.PASSWORD_FILE_ENV, passwords.PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    flag_file = tmp_path / "flag.pw"
    flag_file.write_text("from-flag\n")
    env_file = tmp_path / "env.pw"
    env_file.write_text("from-env-file\nsecond line is not part of it\n")
    script = tmp_path / "pw.py"
    script.write_text("print('from-command')\n")
    config = tmp_path / "config.toml"
    command = shlex.join([sys.executable, str(script)])
    config.write_text(f"[backup]\npassword_command = {command!r}\npassword_secret_block = 'bf-pw'\n")
    monkeypatch.setenv("BACKUPFLOW_CONFIG", str(config))
    monkeypatch.setenv(passwords.PASSWORD_FILE_ENV, str(env_file))
    monkeypatch.setenv(passwords.PASSWORD_ENV, "from-env")
    passwords.use_password_file(str(flag_file))
    yield config
    passwords.forget_given()


def _find() -> str | None:
    return passwords.find_password(read_block=lambda name: f"from-block-{name}")


def test_each_source_wins_over_every_later_one(sources, monkeypatch):
    assert _find() == "from-flag"
    passwords.forget_given()
    assert _find() == "from-env-file"  # its first line only
    monkeypatch.delenv(passwords.PASSWORD_FILE_ENV)
    assert _find() == "from-env"
    monkeypatch.delenv(passwords.PASSWORD_ENV)
    assert _find() == "from-command"
    sources.write_text("[backup]\npassword_secret_block = 'bf-pw'\n")
    assert _find() == "from-block-bf-pw"
    sources.write_text("")
    assert _find() is None  # left to the prompt, or named as missing


def test_a_password_typed_in_this_process_comes_after_the_flag_and_before_the_environment(sources):
    passwords.use_password("typed")
    assert _find() == "from-flag"
    passwords.forget_given()
    passwords.use_password("typed")
    assert _find() == "typed"


def test_the_secret_block_is_read_only_by_a_caller_that_can_read_it(sources, monkeypatch):
    monkeypatch.delenv(passwords.PASSWORD_FILE_ENV)
    monkeypatch.delenv(passwords.PASSWORD_ENV)
    passwords.forget_given()
    sources.write_text("[backup]\npassword_secret_block = 'bf-pw'\n")
    assert passwords.find_password() is None
    assert passwords.configured_sources(load_settings()) == (None, "bf-pw")


@pytest.mark.parametrize("content, words", [(None, "cannot be read"), ("", "is empty"), ("\nlater\n", "is empty")])
def test_a_broken_password_file_is_one_sentence_naming_it(tmp_path, monkeypatch, content, words):
    path = tmp_path / "pw"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(passwords.PASSWORD_FILE_ENV, str(path))
    with pytest.raises(InvalidConfig) as err:
        passwords.given_password()
    assert str(path) in err.value.message and words in err.value.message
    assert "BACKUPFLOW_PASSWORD_FILE" in err.value.message


@pytest.mark.parametrize("script, words", [
    ("import sys; print('s3cret-shown?', file=sys.stderr); sys.exit(3)", "exited with code 3"),
    ("pass", "printed no password"),
])
def test_a_failing_password_command_is_one_sentence_without_its_output(tmp_path, script, words):
    path = tmp_path / "cmd.py"
    path.write_text(script + "\n")
    with pytest.raises(InvalidConfig) as err:
        passwords.run_password_command(shlex.join([sys.executable, str(path)]))
    assert words in err.value.message and "s3cret" not in err.value.message


def test_a_password_command_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(InvalidConfig) as err:
        passwords.run_password_command(str(tmp_path / "no-such-tool") + " --get")
    assert "no-such-tool" in err.value.message and "could not run" in err.value.message


def test_the_flag_may_stand_anywhere_and_is_taken_off_the_command_line(tmp_path):
    try:
        assert take_password_file(["--password-file", "a.pw", "backup", "src"]) == ["backup", "src"]
        assert passwords._GIVEN["file"] == str(Path("a.pw").absolute())
        assert take_password_file(["stats", "--password-file=/x/b.pw", "--json"]) == ["stats", "--json"]
        assert passwords._GIVEN["file"] == "/x/b.pw"
        # after "--" it is an argument, not the flag
        assert take_password_file(["backup", "--", "--password-file"]) == ["backup", "--", "--password-file"]
        with pytest.raises(InvalidConfig, match="needs a path"):
            take_password_file(["stats", "--password-file"])
    finally:
        passwords.forget_given()


def test_a_command_after_the_flag_still_goes_to_the_runner(monkeypatch):
    monkeypatch.delenv("BACKUPFLOW_RUNNER", raising=False)
    assert runner_client.wanted(["--password-file", "backup", "backup", "src"])  # the file may be called so
    assert not runner_client.wanted(["--password-file", "x.pw", "stats"])
