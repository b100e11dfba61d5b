"""Byte counts as people read them ("12.3 MiB"), for the CLI, reports and approval previews."""

from __future__ import annotations

from rich.filesize import pick_unit_and_suffix

UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def human_bytes(n: int | float | None) -> str:
    """``n`` in binary units, one decimal above a KiB ("512 B", "1.5 KiB"); "-" for None."""
    if n is None:
        return "-"
    unit, suffix = pick_unit_and_suffix(int(n), UNITS, 1024)
    return f"{n:.0f} B" if unit == 1 else f"{n / unit:.1f} {suffix}"
