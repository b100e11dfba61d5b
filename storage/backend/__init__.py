"""storage.backend: the one seam between the engine and any storage (the only fsspec user).

Vocabulary: a *backend* stores named, write-once byte *objects*; a *name* is a relative
``/``-separated key. Wrappers (retry, bandwidth limits, fault injection) implement the same
protocol and are composed by :func:`open_backend`. Invariants are listed in ``base.py``.
"""

from storage.backend.base import (
    HOST_TAG, Backend, ObjectInfo, Sink, TemporaryInfo, display_url, innermost, load_into, sink_for,
)
from storage.backend.credentials import (
    is_secret_name, redact_options, refuse_option_credentials, refuse_url_credentials, split_secret_options,
)
from storage.backend.factory import (
    check_option_names, check_repository_url, ensure_container, open_backend, scheme_of,
)
from storage.backend.memory import MemoryBackend

__all__ = ["HOST_TAG", "Backend", "ObjectInfo", "MemoryBackend", "Sink", "TemporaryInfo", "display_url",
           "innermost", "load_into", "sink_for",
           "ensure_container", "open_backend", "scheme_of", "is_secret_name", "redact_options",
           "refuse_option_credentials", "refuse_url_credentials", "split_secret_options",
           "check_option_names", "check_repository_url"]
