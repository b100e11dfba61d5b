"""Repository commands: init, backup, snapshots, ls, diff, restore, verify, export, stats."""
from flows.cli.app import app  # noqa: F401
