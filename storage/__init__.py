"""storage: the backupflow engine. No Prefect here; usable and testable on its own.

Public API (everything above storage/ imports only these names):
Repository, open_backend-free helpers, errors, settings.
"""
