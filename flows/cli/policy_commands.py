"""Policy commands: show the approval policy that governs a repository, and change it (a
critical operation, approved by the approvers of the policy in force)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import List, Optional

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded
from flows.cli.context import load_flows, open_at_terminal, repo_context, with_secret_block
from storage.errors import InvalidConfig
from storage.guardian.stored_policy import effective_policy, repository_policy

policy_app = typer.Typer(help="Show or change the repository's approval policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


@policy_app.command("show")
def show(repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
         json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """The repository's policy, and the one that applies to you (tightened by your config)."""
    def go():
        url, opts, settings = repo_context(repo, option, config)
        opts = with_secret_block(opts)
        open_at_terminal(url, opts).close()  # a location that is not a repository is said so
        stored = repository_policy(url, opts)
        return stored, effective_policy(stored, settings.guardian)
    stored, applied = run_guarded(go)
    if json_out:
        emit_json({"version": stored.version, "stored": stored.policy.model_dump() if stored.policy else None,
                   "applied": applied.model_dump(), "skipped": stored.skipped})
        return
    typer.echo(f"Repository policy: version {stored.version}" if stored.policy
               else "Repository policy: none stored (the defaults apply)")
    for key, value in applied.model_dump().items():
        typer.echo(f"  {key} = {value}")
    for why in stored.skipped:
        typer.echo(f"warning: {why}", err=True)


def _read_guardian(file: str) -> dict:
    try:
        data = tomllib.loads(Path(file).read_text())
    except OSError as exc:
        raise InvalidConfig(f"Cannot read {file} ({exc.strerror or exc}); "
                            "pass a TOML file with a [guardian] section.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{file} is not valid TOML ({exc}); fix the file.") from None
    if not isinstance(data.get("guardian"), dict):
        raise InvalidConfig(f"{file} has no [guardian] section; write the new policy there.")
    return data["guardian"]


@policy_app.command("set")
def set_policy(file: str = typer.Argument(..., help="A TOML file whose [guardian] section is the new policy."),
               repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
               json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Store a new policy in the repository once the current policy's approvers approve it."""
    def go():
        policy = _read_guardian(file)
        url, opts, _ = repo_context(repo, option, config, writing="store a policy")
        runner, flows = load_flows()
        return runner.run_flow(flows.policy_flow, url, opts, False, policy=policy)
    result = run_guarded(go)
    if json_out:
        emit_json(result)
        return
    by = ", ".join(result["approved_by"]) or "nobody (the policy in force asks no one)"
    typer.echo(f"Stored policy version {result['version']}, approved by {by}.")
