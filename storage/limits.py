"""Raise the open-file limit to what the system allows, once per process, as Go programs
(restic among them) do at start.

The soft limit is often 1,024 while the hard limit is far higher; a restore caches a quarter of
it as folder descriptors (storage/repository/restore_target.py), so with the soft limit a tree
of more than 256 folders is walked again from an ancestor for each file write past that.
Raising the soft limit up to the hard one needs no privilege. Applied when the first repository
is opened; a no-op where the platform has no such limit.
"""

from __future__ import annotations

_done = False


def raise_open_files_limit() -> None:
    global _done
    if _done:
        return
    _done = True
    try:
        import resource
    except ImportError:  # not on this platform
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Linux refuses more than fs.nr_open (1,048,576 by default) even under no hard limit.
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass  # refused (a container's own cap): the soft limit stays
