"""The layering rules (README, "Layout"; the import-linter contracts in pyproject.toml), checked
by import-linter on every test run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout


def test_storage_packages_document_themselves():
    for pkg in ("backend", "objects", "snapshots", "repository"):
        init = ROOT / "storage" / pkg / "__init__.py"
        text = init.read_text()
        assert text.lstrip().startswith('"""') and len(text.split('"""')[1]) > 200, f"{init} needs a docstring"
