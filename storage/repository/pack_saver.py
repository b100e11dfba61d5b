"""Packing and uploading the chunks of one backup run.

``PackSaver`` is shared by the reader threads of a store step (file_saver.py): each new chunk
is compressed on the thread that read it and appended to the open pack; a full pack is
committed (local disk) or uploaded (cloud) on the upload threads, off the reader threads.
Every landed pack is indexed at once, so a retry or the next run after a crash reuses it.

On local disk the open pack is streamed to a temporary file, blobs under ``GATHER_BELOW``
gathered into writes of about ``WRITE_SIZE``: the 19,850 small files of the benchmark
workspace cost as many write calls, each made holding the pack's lock and handing the
interpreter lock to the other reader.
The readers share one open pack, so a pack holds files in scan order and restoring one folder
reads few packs.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from storage.backend import Sink, sink_for
from storage.objects import IndexWriter, PackWriter, pack_name

if TYPE_CHECKING:
    from storage.repository.repository import Repository

WRITE_SIZE = 1 << 20
GATHER_BELOW = 64 * 1024  # larger blobs are written as they come: a copy would hold the GIL


class PackSaver:
    """The packing half of a store step (restic's blobSaver): known chunks, the open pack,
    uploads in flight, and the counts of what was added. Called from every reader thread."""

    def __init__(self, repo: Repository, run: str, chain: str, known: set[str], connections: int):
        self.repo = repo
        self.backend = repo.backend
        self.codec = repo.codec()
        self.sealer = repo.sealer
        self.pack_size = repo.config.pack_size
        self.known = known
        self.lock = threading.Lock()
        self.run = run
        self.open_sink = sink_for(repo.backend)
        self.writer: PackWriter = self._new_writer()
        self.index_writer = IndexWriter(repo.backend, run, chain, sealer=repo.sealer)
        self.uploads = ThreadPoolExecutor(connections, thread_name_prefix="bf-upload")
        # Each pack in flight holds pack_size bytes; this bound is most of the backup's memory.
        # A streamed pack holds no memory while it is committed: two may wait for the disk.
        self.in_flight = threading.Semaphore(max(connections, 2) if self.open_sink else connections)
        self.futures: list[Future] = []
        self.packs: list[str] = []
        self.new_chunks = 0
        self.new_raw = 0
        self.new_stored = 0
        self.broken = False

    def _new_writer(self) -> PackWriter:
        return PackWriter(self.run, _Gathered(self.open_sink()) if self.open_sink else None, self.sealer)

    def add(self, cid: str, data) -> None:
        with self.lock:
            if cid in self.known:
                return
            self.known.add(cid)
        stored, flags = self.codec.encode(data, cid)
        with self.lock:
            try:
                self.writer.add(cid, stored, len(data), flags)
            except BaseException:
                self.broken = True  # the open pack lost a write: drop it, never ship it
                raise
            self.new_chunks += 1
            self.new_raw += len(data)
            if len(self.writer) < self.pack_size:
                return
            full, self.writer = self.writer, self._new_writer()
        self._ship(full)

    def _ship(self, writer: PackWriter) -> None:
        self.in_flight.acquire()
        failed = next((f for f in self.futures if f.done() and f.exception() is not None), None)
        if failed is not None:  # a pack could not be stored: stop reading (finish() raises it)
            self.in_flight.release()
            writer.abort()
            self.broken = True
            failed.result()
        if self.open_sink:
            # Hashing the pack back and flushing it to disk take a reader thread off reading
            # for a tenth of a second per pack, most of it waiting on the disk: the upload
            # thread does it while both readers go on.
            self.futures.append(self.uploads.submit(self._commit, writer))
            return
        pack_id, data, blobs = writer.finish()
        assert data is not None  # a pack without a sink is joined in memory
        with self.lock:
            self.new_stored += len(data)
        self.futures.append(self.uploads.submit(self._upload, pack_id, data, blobs))

    def _commit(self, writer: PackWriter) -> None:
        try:
            pack_id, _, blobs = writer.finish()  # written already; this commits it
            with self.lock:
                self.new_stored += len(writer)
            self._indexed(pack_id, blobs)
        except BaseException:
            writer.abort()
            raise
        finally:
            self.in_flight.release()

    def _upload(self, pack_id: str, data: bytes, blobs: list[list]) -> None:
        try:
            self.backend.save(pack_name(pack_id), data)
            self._indexed(pack_id, blobs)
        finally:
            self.in_flight.release()

    def _indexed(self, pack_id: str, blobs: list[list]) -> None:
        self.repo.index.add_pack(pack_id, self.index_writer.run, blobs)
        self.index_writer.add(pack_id, blobs)
        with self.lock:
            self.packs.append(pack_id)

    def finish(self) -> None:
        """Ship the last pack, wait for every upload, write the remaining index entries."""
        last = self.writer
        shipping = bool(last.count) and not self.broken
        try:
            if shipping:
                self._ship(last)
            for f in self.futures:
                f.result()
        finally:
            if not shipping:
                last.abort()  # empty, or left unfinished by a failure
            self.uploads.shutdown(wait=True)
            # Whatever landed is indexed even when the step fails, so a retry reuses it.
            self.index_writer.flush()


class _Gathered:
    """A sink that gathers small writes into writes of about ``WRITE_SIZE`` bytes."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.buf = bytearray(WRITE_SIZE)
        self.filled = 0

    def write(self, data) -> None:
        n = len(data)
        if n >= GATHER_BELOW or self.filled + n > WRITE_SIZE:
            self._flush()  # in order: what was gathered goes first
        if n >= GATHER_BELOW:
            self.sink.write(data)
            return
        self.buf[self.filled:self.filled + n] = data
        self.filled += n

    def _flush(self) -> None:
        if self.filled:
            self.sink.write(memoryview(self.buf)[:self.filled])
            self.filled = 0

    def sha256(self) -> str:
        self._flush()
        return self.sink.sha256()

    def commit(self, name: str) -> None:
        self._flush()
        self.sink.commit(name)

    def abort(self) -> None:
        self.filled = 0
        self.sink.abort()
