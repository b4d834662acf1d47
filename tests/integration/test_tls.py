"""DICOM over TLS and HTTPS for the API, with a CA and certificates made at test time,
dcmtk's `storescu +tls` as the hospital's PACS and real TLS clients."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from archive.catalog.db import make_engine
from archive.catalog.models import Job
from ingest.tls import TlsConfigError, TlsFiles, server_context
from tests.support.harness import REPO, Amana, wait_until
from tests.support.pki import Issued, TestCA
from tests.support.services import free_port, wait_port
from tests.support.study_factory import make_study


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    server: Issued
    client: Issued
    second_client: Issued  # same CA, another hospital's certificate
    rogue_client: Issued  # a CA the receiver does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = TestCA(folder / "ca")
    rogue = TestCA(folder / "rogue", name="Rogue CA")
    return Pki(
        ca=ca,
        server=ca.issue("server", "amana.test", server=True),
        client=ca.issue("pacs-a", "pacs-a.hospital"),
        second_client=ca.issue("pacs-b", "pacs-b.hospital"),
        rogue_client=rogue.issue("rogue", "pacs-a.hospital"),
    )


@dataclass
class TlsReceiver:
    amana: Amana
    tls_port: int


@pytest.fixture(scope="module")
def receiver(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsReceiver]:
    """One receiver with the plain and the TLS port; client certificates required."""
    tls_port = free_port()
    amana = Amana(
        tmp_path_factory.mktemp("tls") / "home",
        AMANA_DICOM_TLS_PORT=str(tls_port),
        AMANA_TLS_CERT=str(pki.server.cert),
        AMANA_TLS_KEY=str(pki.server.key),
        AMANA_TLS_CA=str(pki.ca.cert),
        AMANA_RECEIVER_PROCESSES="1",
    )
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    try:
        wait_port("127.0.0.1", tls_port, timeout=60)
        yield TlsReceiver(amana, tls_port)
    finally:
        amana.stop()


def _storescu_tls(
    port: int, files: list[Path], client: Issued, ca: Path, *, calling_ae: str
) -> subprocess.CompletedProcess[str]:
    # dcmtk's default security profile is BCP 195 non-downgrading (TLS 1.2+, ECDHE, AES-GCM).
    return subprocess.run(
        [
            "storescu",
            "+tls",
            str(client.key),
            str(client.cert),
            "+cf",
            str(ca),
            "-aet",
            calling_ae,
            "-aec",
            "AMANA",
            "127.0.0.1",
            str(port),
            *[str(f) for f in files],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _storescu_plain(
    port: int, files: list[Path], *, calling_ae: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["storescu", "-aet", calling_ae, "-aec", "AMANA", "127.0.0.1", str(port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _jobs_of(amana: Amana, calling_ae: str) -> list[Job]:
    engine = make_engine(f"sqlite:///{amana.home / 'catalog.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(Job).where(Job.calling_ae == calling_ae)).all())
    finally:
        engine.dispose()


def _jobs_when(amana: Amana, calling_ae: str, count: int) -> list[Job]:
    """The jobs of `calling_ae` once there are `count` (rows follow the answers)."""
    wait_until(lambda: len(_jobs_of(amana, calling_ae)) >= count, timeout=60)
    return _jobs_of(amana, calling_ae)


def _study(folder: Path) -> list[Path]:
    return make_study(folder, layout=[("CT_small.dcm", "ct")]).files


def test_storescu_over_tls_is_stored_while_a_silent_client_waits(
    receiver: TlsReceiver, pki: Pki, tmp_path: Path
) -> None:
    """Rule: a PACS with a certificate of the trusted CA sends over DICOM TLS and gets
    Success, and then exactly its job row; a client that opens the TLS port and never
    handshakes holds back nobody (the handshake runs off the accept loop)."""
    files = _study(tmp_path / "pacs")
    with socket.create_connection(("127.0.0.1", receiver.tls_port)):
        sent = _storescu_tls(
            receiver.tls_port, files, pki.client, pki.ca.cert, calling_ae="TLS_PACS"
        )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert len(_jobs_when(receiver.amana, "TLS_PACS", len(files))) == len(files)


def test_untrusted_certificate_and_plain_dicom_are_refused_at_handshake(
    receiver: TlsReceiver, pki: Pki, tmp_path: Path
) -> None:
    """Rule: on the TLS port a client certificate from another CA, or no TLS at all, ends
    at the handshake: no association, no job, and a log line with the address only."""
    files = _study(tmp_path / "pacs")
    rogue = _storescu_tls(
        receiver.tls_port, files, pki.rogue_client, pki.ca.cert, calling_ae="ROGUE_PACS"
    )
    plain = _storescu_plain(receiver.tls_port, files, calling_ae="PLAIN_PACS")
    assert rogue.returncode != 0 and plain.returncode != 0
    assert _jobs_of(receiver.amana, "ROGUE_PACS") == []
    assert _jobs_of(receiver.amana, "PLAIN_PACS") == []
    log = receiver.amana.log_text()
    assert "TLS handshake refused from 127.0.0.1: CERTIFICATE_VERIFY_FAILED" in log
    assert "TLS handshake refused from 127.0.0.1: WRONG_VERSION_NUMBER" in log


def test_source_bound_to_a_certificate_accepts_only_that_certificate(
    receiver: TlsReceiver, pki: Pki, tmp_path: Path
) -> None:
    """Rule: a registered source bound to a certificate fingerprint is rejected at
    A-ASSOCIATE when it presents another valid certificate of the same CA, and on the plain
    port; with its own certificate its studies are stored and attributed to it. Bound by
    subject CN, the certificate carrying that CN is accepted and the other refused."""
    amana = receiver.amana
    added = amana.cli(
        "sources", "add", "BOUND_PACS", "127.0.0.1", "--cert-file", str(pki.client.cert)
    )
    assert added.returncode == 0, added.stdout + added.stderr
    files = _study(tmp_path / "pacs")
    other = _storescu_tls(
        receiver.tls_port, files, pki.second_client, pki.ca.cert, calling_ae="BOUND_PACS"
    )
    assert other.returncode != 0
    assert "Rejected" in other.stdout + other.stderr
    plain = _storescu_plain(amana.dicom_port, files, calling_ae="BOUND_PACS")
    assert "Rejected" in plain.stdout + plain.stderr
    assert _jobs_of(amana, "BOUND_PACS") == []
    own = _storescu_tls(receiver.tls_port, files, pki.client, pki.ca.cert, calling_ae="BOUND_PACS")
    assert own.returncode == 0, own.stdout + own.stderr
    jobs = _jobs_when(amana, "BOUND_PACS", len(files))
    assert len(jobs) == len(files) and all(job.source_id is not None for job in jobs)
    assert "client certificate is not the one registered for this AE title" in amana.log_text()
    # Re-bound by subject CN instead: the other hospital's certificate now names it.
    edited = amana.cli(
        "sources", "edit", "BOUND_PACS", "--cert-sha256", "", "--cert-cn", "pacs-b.hospital"
    )
    assert edited.returncode == 0, edited.stdout + edited.stderr
    by_name = _storescu_tls(
        receiver.tls_port, files, pki.second_client, pki.ca.cert, calling_ae="BOUND_PACS"
    )
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    first = _storescu_tls(
        receiver.tls_port, files, pki.client, pki.ca.cert, calling_ae="BOUND_PACS"
    )
    assert "Rejected" in first.stdout + first.stderr
    assert len(_jobs_when(amana, "BOUND_PACS", 2 * len(files))) == 2 * len(files)


@pytest.mark.parametrize(
    "profile", ["--profile-bcp195-nd", "--profile-bcp195", "--profile-bcp195-ex"]
)
def test_dcmtk_bcp195_profiles_are_served(receiver: TlsReceiver, pki: Pki, profile: str) -> None:
    """Rule: each of dcmtk's BCP 195 profiles (non-downgrading, plain, extended) finds a
    suite the TLS port serves, so a PACS configured for any of them can send."""
    echo = subprocess.run(
        ["echoscu", "+tls", str(pki.client.key), str(pki.client.cert), "+cf", str(pki.ca.cert)]
        + [profile, "-aet", "ECHO_PACS", "-aec", "AMANA", "127.0.0.1", str(receiver.tls_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert echo.returncode == 0, echo.stdout + echo.stderr


def _listeners_of(port: int) -> set[int]:
    """The socket inodes listening on 127.0.0.1:`port` (from /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(int(fields[9]))
    return inodes


def _holds_socket(pid: int, inodes: set[int]) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    links = {str(os.readlink(fd)) for fd in fds.iterdir() if fd.is_symlink()}
    return any(f"socket:[{inode}]" in links for inode in inodes)


def test_receiver_processes_share_the_tls_port(pki: Pki, tmp_path: Path) -> None:
    """Rule: with AMANA_RECEIVER_PROCESSES=2 the sibling listens on the TLS port too (not
    only the owner), and parallel TLS associations are all stored."""
    tls_port = free_port()
    amana = Amana(
        tmp_path / "home",
        AMANA_DICOM_TLS_PORT=str(tls_port),
        AMANA_TLS_CERT=str(pki.server.cert),
        AMANA_TLS_KEY=str(pki.server.key),
        AMANA_TLS_CA=str(pki.ca.cert),
        AMANA_RECEIVER_PROCESSES="2",
    )
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    try:
        assert amana.proc is not None
        owner = amana.proc.pid
        children = Path(f"/proc/{owner}/task/{owner}/children")
        wait_until(lambda: bool(children.read_text().split()))
        sibling = int(children.read_text().split()[0])
        wait_until(lambda: _holds_socket(sibling, _listeners_of(tls_port)))
        assert _holds_socket(owner, _listeners_of(tls_port))
        files = _study(tmp_path / "pacs")
        runs = [
            subprocess.Popen(
                ["storescu", "+tls", str(pki.client.key), str(pki.client.cert)]
                + ["+cf", str(pki.ca.cert), "-aet", f"PAR_{n}", "-aec", "AMANA"]
                + ["127.0.0.1", str(tls_port), *[str(f) for f in files]],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(4)
        ]
        assert [run.wait(120) for run in runs] == [0, 0, 0, 0]
        assert all(len(_jobs_when(amana, f"PAR_{n}", len(files))) == len(files) for n in range(4))
    finally:
        amana.stop()


def _tls_client(pki: Pki, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(pki.ca.cert))
    ctx.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point here
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = maximum
    # Lets this client's OpenSSL offer TLS 1.1 at all, so the refusal is the server's.
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext) -> str | None:
    """The protocol version negotiated, or None when the server refused the handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.version()
        except ssl.SSLError:
            return None


def test_tls_1_1_is_refused(receiver: TlsReceiver, pki: Pki) -> None:
    """Rule: the DICOM TLS port speaks TLS 1.2 and later only (BCP 195); the same client
    capped at TLS 1.1 is refused by the server, and at TLS 1.2 it is accepted."""
    assert _handshake(receiver.tls_port, _tls_client(pki, ssl.TLSVersion.TLSv1_1)) is None
    assert _handshake(receiver.tls_port, _tls_client(pki, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert "TLS handshake refused from 127.0.0.1: UNSUPPORTED_PROTOCOL" in (
        receiver.amana.log_text()
    )


def test_api_over_https_only(pki: Pki, tmp_path: Path) -> None:
    """Rule: with AMANA_API_TLS_CERT/KEY the API answers HTTPS (TLS 1.2+) to a client that
    verifies it against the CA, and plain HTTP on that port gets no answer."""
    amana = Amana(
        tmp_path / "home",
        AMANA_API_TLS_CERT=str(pki.server.cert),
        AMANA_API_TLS_KEY=str(pki.server.key),
    )
    amana.cli("db", "upgrade")
    amana.home.mkdir(parents=True, exist_ok=True)
    with amana.log_path.open("ab") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "amana.cli", "api"],
            env=amana.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        wait_port("127.0.0.1", amana.api_port, timeout=90)
        verify = ssl.create_default_context(cafile=str(pki.ca.cert))
        with httpx.Client(verify=verify) as client:
            health = client.get(f"https://127.0.0.1:{amana.api_port}/health")
        assert health.status_code == 200
        with pytest.raises(httpx.TransportError), httpx.Client() as plain:
            plain.get(f"http://127.0.0.1:{amana.api_port}/health")
        old = _tls_client(pki, ssl.TLSVersion.TLSv1_1)
        assert _handshake(amana.api_port, old) is None
    finally:
        api.terminate()
        api.wait(30)


def test_each_broken_file_is_named_by_its_variable(pki: Pki, tmp_path: Path) -> None:
    """Rule: the context check names the variable whose file is at fault: a key given as
    the certificate, a certificate as the key, an encrypted key (never a password prompt),
    another certificate's key, a directory, a CA file with no certificate."""
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hospital-secret"),
        )
    )
    cert, own_key, ca = pki.server.cert, pki.server.key, pki.ca.cert
    cases = [
        (TlsFiles(own_key, own_key), "AMANA_TLS_CERT"),
        (TlsFiles(cert, cert), "AMANA_TLS_KEY"),
        (TlsFiles(cert, encrypted), "AMANA_TLS_KEY"),
        (TlsFiles(cert, pki.client.key), "AMANA_TLS_KEY"),
        (TlsFiles(tmp_path, own_key), "AMANA_TLS_CERT"),
        (TlsFiles(cert, own_key, client_ca=own_key), "AMANA_TLS_CA"),
        (TlsFiles(cert, None, key_var="AMANA_API_TLS_KEY"), "AMANA_API_TLS_KEY"),
    ]
    for files, variable in cases:
        with pytest.raises(TlsConfigError) as refused:
            server_context(files)
        assert refused.value.variable == variable, (files, str(refused.value))
    assert server_context(TlsFiles(cert, own_key, client_ca=ca)).verify_mode == ssl.CERT_REQUIRED


def test_broken_tls_settings_stop_start_with_one_line(pki: Pki, tmp_path: Path) -> None:
    """Rule: at start a missing certificate, a key that does not match its certificate, or
    an API certificate without its key stops Amana before anything runs, with one line
    naming the variable at fault."""
    cases = {
        "AMANA_TLS_CERT": {"AMANA_TLS_CERT": str(tmp_path / "absent.pem")},
        "AMANA_TLS_KEY": {"AMANA_TLS_KEY": str(pki.client.key)},
        "AMANA_API_TLS_KEY": {"AMANA_API_TLS_CERT": str(pki.server.cert)},
        "AMANA_TLS_CA": {"AMANA_TLS_CA": str(pki.server.key)},
    }
    for variable, broken in cases.items():
        env = {
            "AMANA_DICOM_TLS_PORT": str(free_port()),
            "AMANA_TLS_CERT": str(pki.server.cert),
            "AMANA_TLS_KEY": str(pki.server.key),
        }
        if variable != "AMANA_API_TLS_KEY":
            env["AMANA_TLS_CA"] = str(pki.ca.cert)
        env.update(broken)
        amana = Amana(tmp_path / variable, **env)
        result = amana.cli("run", check=False, timeout=60)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, result.stdout + result.stderr
        assert len(lines) == 1 and lines[0].startswith(f"amana: {variable}:"), lines
        assert not (amana.home / "catalog.db").exists()
