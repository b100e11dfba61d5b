"""A private PostgreSQL cluster and a Prefect server on it, for the tests of many workers.

Prefect on SQLite serialises every write: with two workers and six concurrent runs its server
logs "database is locked". A fleet runs on PostgreSQL, so the fleet tests do too. The cluster
lives in a temporary folder under /tmp (the ``postgres`` user must reach it, so not under a
private pytest folder), listens on 127.0.0.1 on a free port only, asks for a password over
TCP, and is stopped and deleted at the end of the session.

PostgreSQL's programs come from the Debian ``postgresql`` package (installed by
scripts/install_test_tools.sh, or here when missing and apt-get is present). ``initdb`` and
``pg_ctl`` refuse to run as root, so when the tests run as root they run as ``postgres``.

Tests that need it are marked ``@pytest.mark.postgres`` and take the ``postgres_prefect_server``
fixture (a :class:`tests.prefect_server.PrefectServer` with its services on: automations and
the event persister need them). It does not change this process's PREFECT_API_URL (the
session's SQLite server keeps that); give its ``env()`` to the subprocesses that should use it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.prefect_server import PrefectServer, free_port

PG_USER = "postgres"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def install_postgres() -> Path:
    """PostgreSQL's bin folder, installing the Debian package first when it is missing."""
    found = postgres_bin()
    if found:
        return found
    if not shutil.which("apt-get"):
        raise RuntimeError("PostgreSQL is not installed and there is no apt-get; install PostgreSQL 13 or later")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], env=env, check=True, capture_output=True)
    found = postgres_bin()
    if not found:
        raise RuntimeError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/pg_ctl appeared")
    return found


class PostgresCluster:
    """initdb + pg_ctl in a temporary folder; ``url`` is what Prefect's server connects with."""

    def __init__(self) -> None:
        self.bin = install_postgres()
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.dir = Path(tempfile.mkdtemp(prefix="bf-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}:{self.password}@127.0.0.1:{self.port}/prefect"

    def _run(self, *argv: str) -> None:
        kwargs = {"user": PG_USER} if self.as_root else {}
        done = subprocess.run([str(self.bin / argv[0]), *argv[1:]], capture_output=True, text=True,
                              cwd=self.dir, **kwargs)  # type: ignore[call-overload]
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}")

    def start(self) -> "PostgresCluster":
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            pg = pwd.getpwnam(PG_USER)
            os.chown(self.dir, pg.pw_uid, pg.pw_gid)
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                  "--auth-local=trust", "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        # Enough connections for a server with its services and several workers' clients;
        # fsync off: a test cluster that dies with the session need not survive a power cut.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self._run("createdb", "-h", str(self.dir), "-p", str(self.port), "-U", PG_USER, "prefect")
        return self

    def query(self, sql: str) -> str:
        """One SQL statement through psql on the cluster's socket; its unaligned output."""
        kwargs = {"user": PG_USER} if self.as_root else {}
        done = subprocess.run([str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", PG_USER,
                               "-d", "prefect", "-At", "-c", sql], capture_output=True, text=True, cwd=self.dir,
                              check=True, **kwargs)  # type: ignore[call-overload]
        return done.stdout.strip()

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def start_postgres_prefect(home: Path) -> tuple[PostgresCluster, PrefectServer]:
    cluster = PostgresCluster().start()
    try:
        server = PrefectServer(home, extra_env={"PREFECT_API_DATABASE_CONNECTION_URL": cluster.url},
                               services=True).start()
    except Exception:
        cluster.stop()
        raise
    return cluster, server


@pytest.fixture(scope="session")
def postgres_prefect_server(tmp_path_factory):
    """A Prefect server (services on) backed by a private PostgreSQL cluster, for the session."""
    started = time.monotonic()
    try:
        cluster, server = start_postgres_prefect(tmp_path_factory.mktemp("prefect-pg-home"))
    except Exception as exc:
        msg = f"cannot start PostgreSQL and a Prefect server on it ({exc}); run scripts/install_test_tools.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    server.startup_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    server.cluster = cluster  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()
        cluster.stop()
