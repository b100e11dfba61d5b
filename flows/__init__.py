"""flows: the user-facing Prefect flows (thin: they read like the pipeline) and the CLI.

From Python::

    from flows import backup_flow, restore_flow, verify_flow
    backup_flow(source="~/work", repo="/backups/repo")

The flows are loaded on first use (PEP 562) rather than here: importing Prefect takes over a
second, and the CLI's read-only commands, which live in this package, must answer without it.
"""

from importlib import import_module

_FLOWS = {"backup_flow": "flows.backup", "restore_flow": "flows.restore", "verify_flow": "flows.verify",
          "forget_flow": "flows.forget", "prune_flow": "flows.forget",
          "repair_index_flow": "flows.repair", "repair_snapshots_flow": "flows.repair",
          "policy_flow": "flows.policy", "archive_flow": "flows.archive",
          "restore_archive_flow": "flows.archive", "verify_archives_flow": "flows.archive",
          "cleanup_flow": "flows.cleanup", "restore_workflows_flow": "flows.workflows"}


def __getattr__(name: str):
    if name in _FLOWS:
        return getattr(import_module(_FLOWS[name]), name)
    raise AttributeError(f"module 'flows' has no attribute {name!r}")


__all__ = list(_FLOWS)
