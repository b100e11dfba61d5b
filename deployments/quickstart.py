"""The README's first command: back up a sample workspace, change it, back it up again,
restore it and verify the repository, all as Prefect flow runs on the local Prefect server
that the resident runner uses too (deployments/local_server.py; PREFECT_API_URL wins).

The workspace, repository, restore and audit log land under ./data, so the demo never touches
anything else. scripts/quickstart.sh then serves the schedules and the UI in the foreground
(`backupflow serve`) when it runs in a terminal; elsewhere (CI) it ends here, and a server
started only for the demo is stopped again (its runs stay in its database).
"""

from __future__ import annotations

import filecmp
import os
import random
import secrets
import shutil
import sys
from pathlib import Path

from prefect.context import refresh_global_settings_context
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker

from deployments import local_server
from flows import backup_flow, restore_flow, verify_flow
from flows.cli.runner_protocol import data_dir
from flows.runtime import in_process_run

DATA = Path("data")
PASSWORD_FILE = DATA / "repository.password"  # scripts/quickstart.sh gives it to `backupflow serve` too


def make_workspace(root: Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = "def class return import self value item result config backup restore chunk pack index".split()
    for i in range(300):
        folder = root / f"pkg{i % 6}" / f"mod{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [" ".join(rng.choice(words) for _ in range(8)) + f" = {rng.randint(0, 10**6)}"
                 for _ in range(rng.randint(5, 400))]
        (folder / f"file_{i}.py").write_text("\n".join(lines) + "\n")
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / "blob.bin").write_bytes(rng.randbytes(4 * 1024 * 1024))
    (root / "empty-dir").mkdir(exist_ok=True)
    if not (root / "link-to-pkg0").exists():
        os.symlink("pkg0", root / "link-to-pkg0")


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def password_file(path: Path = PASSWORD_FILE) -> Path:
    """The sample repository's password file: made once with a random password, readable by
    this user only, and used by every run of the demo (BACKUPFLOW_PASSWORD_FILE), so the
    quickstart needs no typing while its repository is encrypted like any other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    os.chmod(path, 0o600)
    os.environ["BACKUPFLOW_PASSWORD_FILE"] = str(path.absolute())
    return path


def _server() -> local_server.LocalServer | None:
    """The local Prefect server, unless PREFECT_API_URL names one; Prefect's settings follow."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    print(f"0/4 starting (or finding) the local Prefect server (SQLite in {local_server.home(data_dir())})")
    server = local_server.ensure(data_dir())
    os.environ.update(server.env())
    refresh_global_settings_context()  # Prefect read its settings at import, before the address was known
    return server


def main() -> int:
    os.environ.setdefault("BACKUPFLOW_AUDIT_PATH", str(DATA / "audit"))
    workspace, repo, target = DATA / "sample-workspace", DATA / "repository", DATA / "restored"
    # The demo's audit log goes with its repository: verify checks that every snapshot the log
    # records is still there, so a log from an earlier run would report them as deleted.
    for p in (workspace, repo, target, DATA / "audit"):
        shutil.rmtree(p, ignore_errors=True)
    make_workspace(workspace)
    secret = password_file()
    print(f"The sample repository is encrypted; its password is in {secret.absolute()} (only you can read it). "
          "Without that file the backups in it cannot be read by anyone: keep a copy of it for real backups.")
    server = _server()
    print(f"1/4 backing up {workspace} into {repo} (full)")
    with in_process_run():
        first = backup_flow(source=str(workspace), repo=str(repo))
        (workspace / "pkg1" / "mod1" / "file_1.py").write_text("changed = True\n")
        print("2/4 backing up again after a change (incremental)")
        second = backup_flow(source=str(workspace), repo=str(repo))
        print(f"3/4 restoring snapshot {second['short_id']} into {target}")
        restore_flow(snapshot=second["snapshot_id"], target=str(target), repo=str(repo))
        print("4/4 verifying every byte of the repository")
        report = verify_flow(repo=str(repo), read_data=True)
    ok = same_tree(workspace, target) and report["ok"]
    print()
    print(f"full backup        {first['short_id']}: {first['stats']['files']} files, "
          f"{first['stats']['bytes_added']} bytes stored")
    print(f"incremental backup {second['short_id']}: {second['stats']['bytes_read']} bytes read, "
          f"{second['stats']['bytes_added']} bytes added")
    print(f"restore identical to the workspace: {'yes' if ok else 'NO'}")
    print()
    if server is not None:
        print(f"The runs and their backup reports are in the Prefect UI at {server.ui_url}/runs")
    if server is not None and server.started_now and os.environ.get("BACKUPFLOW_QUICKSTART_SERVE") != "1":
        # The runs' last logs and events reach the server before it stops; sent after, Prefect
        # printed "--- Error logging to API ---" under the summary.
        EventsWorker.drain_all(timeout=10)
        APILogWorker.drain_all(timeout=10)
        local_server.stop(data_dir())
        print(f"(stopped again: `BACKUPFLOW_PASSWORD_FILE={secret} .venv/bin/backupflow serve "
              "--source data/sample-workspace --repo data/repository` serves the schedules and this UI)")
    print(f"Try the CLI: .venv/bin/backupflow snapshots --repo {repo} --password-file {secret}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
