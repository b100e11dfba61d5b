"""The CLI against a Prefect server on PostgreSQL, as a fleet runs it."""

from __future__ import annotations

import pytest

from tests.flows.cli_process import cli_env, run
from tests.treegen import assert_same_tree, make_tree

pytestmark = pytest.mark.postgres


def test_backup_and_restore_through_the_cli_on_a_postgres_server(postgres_prefect_server, tmp_path):
    server = postgres_prefect_server
    env = cli_env(server, tmp_path)
    tree = make_tree(tmp_path / "src", seed=17)
    repo = str(tmp_path / "repo")
    backup = run(["backup", str(tree.root), "--repo", repo, "--json"], env, tmp_path).json()
    restored = tmp_path / "restored"
    run(["restore", "latest", str(restored), "--repo", repo, "--json"], env, tmp_path).json()
    assert_same_tree(tree.root, restored)
    # the run was recorded in PostgreSQL, not in some SQLite file, and ended Completed there
    state = server.cluster.query(f"SELECT state_type FROM flow_run WHERE id = '{backup['flow_run_id']}'")
    assert state == "COMPLETED"
