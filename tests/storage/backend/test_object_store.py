"""Cloud destinations fail the way a user can act on: permanent errors at once, in one sentence
naming the destination and what to check; transient ones marked for retry. Also
``ensure_container`` (what ``backupflow init`` calls) on each protocol server.
"""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from botocore.exceptions import ClientError
from gcsfs.retry import HttpError

from storage.backend import ensure_container, open_backend
from storage.backend.azure import azure_error_map
from storage.backend.base import COMMAND_STARTED_ENV, innermost
from storage.backend.gcs import gcs_error_map
from storage.backend.s3 import s3_error_map
from storage.errors import InvalidConfig, NotFound, PermanentError, TransientError, Unreachable
from tests.cloud_servers import AZURITE_ACCOUNT, AZURITE_KEY, free_port, moto

SERVERS = ["s3", "azure", "gcs"]


def one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.endswith(".") and "Traceback" not in msg


@pytest.fixture(scope="module")
def s3_auth_server(tmp_path_factory):
    """A second moto_server that checks signatures, so bad credentials get a real 403."""
    server = moto(INITIAL_NO_AUTH_ACTION_COUNT="0").start(tmp_path_factory.mktemp("moto-auth"))
    yield server
    server.stop()


@pytest.mark.parametrize("kind", SERVERS)
def test_missing_bucket_fails_at_once_naming_it(kind, request):
    dest = request.getfixturevalue(f"{kind}_server").new_destination(create=False)
    backend = open_backend(dest.url, dest.options, retry_seconds=60)  # retry on: it must not retry
    for call in (lambda: backend.load("config"), lambda: list(backend.list("snapshots/")),
                 lambda: backend.save("config", b"x"), lambda: backend.stat("config")):
        started = time.monotonic()
        with pytest.raises(PermanentError) as info:
            call()
        assert time.monotonic() - started < 20  # not retried: the retry budget is 60 s
        msg = info.value.message
        assert dest.bucket in msg and "does not exist" in msg and "backupflow init" in msg
        assert one_sentence(msg), msg


@pytest.mark.parametrize("kind", SERVERS)
def test_ensure_container_creates_a_missing_bucket_once(kind, request):
    dest = request.getfixturevalue(f"{kind}_server").new_destination(create=False)
    assert ensure_container(dest.url, dest.options) is True
    assert ensure_container(dest.url, dest.options) is False
    backend = open_backend(dest.url, dest.options)
    backend.save("config", b"repository config")
    assert backend.load("config") == b"repository config"
    assert [i.name for i in backend.list()] == ["config"]


def test_local_ensure_container_makes_the_folder(tmp_path):
    assert ensure_container(str(tmp_path / "a" / "repo")) is True
    assert (tmp_path / "a" / "repo").is_dir()
    assert ensure_container(str(tmp_path / "a" / "repo")) is False


def test_s3_bad_credentials_fail_at_once_without_leaking_the_secret(s3_auth_server):
    options = {"endpoint_url": s3_auth_server.endpoint, "key": "AKIAEXAMPLEWRONG", "secret": "wrong-secret-value"}
    backend = open_backend("s3://backups/repo", options, retry_seconds=60)
    for call in (lambda: backend.load("config"), lambda: backend.save("config", b"x"),
                 lambda: ensure_container("s3://backups/repo", options)):
        started = time.monotonic()
        with pytest.raises(PermanentError) as info:
            call()
        assert time.monotonic() - started < 20  # not retried: the retry budget is 60 s
        msg = info.value.message
        assert "s3://backups/repo" in msg and "403" in msg and "AWS_ACCESS_KEY_ID" in msg
        assert "wrong-secret-value" not in msg and one_sentence(msg), msg


def test_azure_bad_account_key_fails_at_once_without_leaking_it(azure_server):
    dest = azure_server.new_destination()
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    conn = dest.options["connection_string"].split("AccountKey=")[0] + f"AccountKey={wrong_key};BlobEndpoint=" + \
        dest.options["connection_string"].split("BlobEndpoint=")[1]
    backend = open_backend(dest.url, {"connection_string": conn}, retry_seconds=60)
    for call in (lambda: backend.load("config"), lambda: list(backend.list()), lambda: backend.save("x", b"x")):
        started = time.monotonic()
        with pytest.raises(PermanentError) as info:
            call()
        assert time.monotonic() - started < 20  # not retried: the retry budget is 60 s
        msg = info.value.message
        assert dest.url in msg and "403" in msg and "AZURE_STORAGE_CONNECTION_STRING" in msg
        assert wrong_key not in msg and one_sentence(msg), msg


def test_gcs_missing_credentials_file_is_a_config_error(gcs_server):
    dest = gcs_server.new_destination()
    with pytest.raises(InvalidConfig) as info:
        open_backend(dest.url, {**dest.options, "token": "/nonexistent/service-account.json"})
    assert "/nonexistent/service-account.json" in info.value.message and one_sentence(info.value.message)


def test_azure_without_any_account_names_the_variables(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    with pytest.raises(InvalidConfig) as info:
        open_backend("az://backups/repo")
    assert "AZURE_STORAGE_CONNECTION_STRING" in info.value.message and "az://backups/repo" in info.value.message


def test_unreachable_s3_endpoint_is_transient():
    # SDK-level retries off so the test sees our classification quickly.
    options = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "key": "k", "secret": "s",
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    backend = open_backend("s3://backups/repo", options, retry_seconds=0)
    with pytest.raises(TransientError) as info:
        backend.load("config")
    assert "s3://backups/repo" in info.value.message


def _nobody_listening(kind: str) -> tuple[str, dict]:
    """A repository URL and options whose endpoint is a port on this machine nobody listens on."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    if kind == "s3":
        return "s3://backups/repo", {"endpoint_url": endpoint, "key": "k", "secret": "s"}
    if kind == "azure":
        return "az://backups/repo", {"connection_string": (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};")}
    return "gs://backups/repo", {"endpoint_url": endpoint, "token": "anon"}


@pytest.mark.parametrize("kind", SERVERS)
def test_an_endpoint_that_never_answers_is_reported_within_the_first_contact_time(kind):
    # The SDKs alone retry a refused connection for 4 s (S3), 33 s (GCS) or 79 s (Azure) per
    # call, and our retry layer used to add two minutes on top.
    url, options = _nobody_listening(kind)
    backend = open_backend(url, {**options, "first_contact_seconds": "3"})  # the default retry budget
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        backend.load("config")
    assert time.monotonic() - started < 8
    msg = info.value.message
    assert msg.startswith(f"No answer from {url} within 3 s") and "check the endpoint" in msg, msg
    assert one_sentence(msg) and not info.value.transient, "reported, not retried again by the task layer"


def test_once_the_service_has_answered_a_failure_gets_the_whole_retry_budget(tmp_path):
    server = moto().start(tmp_path / "moto")
    try:
        # The first contact gets a time a loaded machine can meet (1 s was not: creating the
        # S3 client and moto's first answer can take longer). Once the service has answered,
        # the first-contact time is cut to 1 s, so a failure retried for longer than that can
        # only have been given the whole retry budget.
        options = {"endpoint_url": server.endpoint, "key": "k", "secret": "s", "first_contact_seconds": 60}
        ensure_container("s3://blips/repo", options)
        backend = open_backend("s3://blips/repo", options, retry_seconds=6)
        backend.save("config", b"x")
        raw = innermost(backend)
        assert raw.answered
        raw.first_contact_seconds = 1
    finally:
        server.stop()  # the network goes away in the middle of the run
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        backend.load("config")
    assert not isinstance(info.value, Unreachable) and info.value.transient
    assert time.monotonic() - started > 3, "retried beyond the first-contact time"


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_first_contact_seconds_must_be_a_positive_number(value):
    with pytest.raises(InvalidConfig, match="first_contact_seconds must be a number of seconds above 0"):
        open_backend("s3://backups/repo", {"first_contact_seconds": value})


def test_gcsfs_retry_tracebacks_are_not_printed(caplog):
    # gcsfs logs each request that ran out of retries with its traceback; the error reaches the
    # user once, in one sentence, through the error mapping.
    import logging

    import storage.backend.gcs  # noqa: F401  (installs the filter)

    with caplog.at_level(logging.DEBUG, logger="gcsfs"):
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError as exc:
            logging.getLogger("gcsfs").error("_request out of retries on exception: %s", exc, exc_info=True)
        logging.getLogger("gcsfs").warning("a plain warning still shows")
    assert [r.getMessage() for r in caplog.records] == ["a plain warning still shows"]


# Servers do not answer 503 or throttle on demand, so these build the vendors' own exception
# objects for such replies and check the classification the retry layer relies on.
def _client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


@pytest.mark.parametrize("status,code,expected", [
    (503, "SlowDown", TransientError), (500, "InternalError", TransientError), (429, "TooManyRequests", TransientError),
    (400, "RequestTimeout", TransientError), (403, "AccessDenied", PermanentError), (404, "NoSuchBucket", NotFound),
])
def test_s3_error_classes(status, code, expected):
    wrapped = OSError("translated by s3fs")
    wrapped.__cause__ = _client_error(status, code)
    assert type(s3_error_map(wrapped, "x in s3://b/r")) is expected


@pytest.mark.parametrize("exc,expected", [
    (HttpResponseError(message="busy", response=None), None),
    (ServiceRequestError("connection reset"), TransientError),
])
def test_azure_error_classes(exc, expected):
    mapped = azure_error_map(exc, "x in az://c/r")
    assert (type(mapped) if mapped else None) is expected


def test_azure_5xx_and_throttling_are_transient():
    for status in (500, 503, 429):
        exc = HttpResponseError(message="server busy")
        exc.status_code = status
        assert isinstance(azure_error_map(exc, "x in az://c/r"), TransientError)
    exc = HttpResponseError(message="denied")
    exc.status_code = 403
    assert isinstance(azure_error_map(exc, "x in az://c/r"), PermanentError)


@pytest.mark.parametrize("status,expected", [(503, TransientError), (429, TransientError), (401, PermanentError)])
def test_gcs_error_classes(status, expected):
    assert type(gcs_error_map(HttpError({"code": status, "message": "m"}), "x in gs://b/r")) is expected
    assert isinstance(gcs_error_map(OSError("Forbidden: b/o\nno access"), "x in gs://b/r"), PermanentError)


def test_a_second_first_contact_with_a_dead_endpoint_gives_the_verdict_at_once():
    # A backup opens its repository several times (the audit mirror, then each task): each used
    # to wait the whole first-contact time again, so "within 20 s" came after a minute.
    url, options = _nobody_listening("gs")
    # 8 s, and the verdict within half of it: opening a backend took over a second on a loaded
    # machine, so "under 1.5 s of a 2 s time" failed without anything waiting.
    opts = {**options, "first_contact_seconds": "8"}
    with pytest.raises(Unreachable) as first:
        open_backend(url, opts).load("config")
    started = time.monotonic()
    with pytest.raises(Unreachable) as again:
        open_backend(url, opts).load("config")
    assert time.monotonic() - started < 4
    assert again.value.message == first.value.message


@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_the_first_contact_time_counts_from_when_the_command_began(kind, monkeypatch):
    # The person waits from the moment they gave the command; Prefect's start-up and the flow
    # run's creation (seconds on a loaded machine) came first, and "within 20 s" arrived after 26.
    url, options = _nobody_listening(kind)
    monkeypatch.setenv(COMMAND_STARTED_ENV, repr(time.time() - 9))  # the command began 9 s ago
    backend = open_backend(url, {**options, "first_contact_seconds": "20"})
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        backend.load("config")
    assert time.monotonic() - started < 15, "11 s were left of the command's 20"
    assert info.value.message.startswith(f"No answer from {url} within 20 s")


def test_a_backend_first_used_long_after_the_command_began_gets_its_whole_time(monkeypatch):
    # (a restore that waited hours for an approval must not find its time already spent)
    url, options = _nobody_listening("s3")
    monkeypatch.setenv(COMMAND_STARTED_ENV, repr(time.time() - 3600))
    backend = open_backend(url, {**options, "first_contact_seconds": "4"})
    started = time.monotonic()
    with pytest.raises(Unreachable):
        backend.load("config")
    assert time.monotonic() - started >= 3.5
