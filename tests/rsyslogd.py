"""Real rsyslogds for the tests and scenario 7, as children of the test process.

``Daemon`` is the one launcher: ``rsyslogd -n -C -i NONE -f CONF`` with a configuration of the
caller's, in a directory of its own, its output in ``rsyslogd.out`` there, stopped by the
fixture that started it (the sidecar tests run two). ``Rsyslogd`` is the collector of the
syslog tests: UDP, TCP, TLS, RELP, RELP over TLS and a unix socket.

The collector listens on free loopback ports,
with a throwaway CA made here, and writes each input's ``%rawmsg%`` to a file of its own. Its
main queue is Direct: an input hands a message to the file action before it goes on, so
imrelp's ``200`` means the message is in the file (the end-to-end setting the README names).

RELP over TLS ("relptls", and "relpmtls" which also wants a client certificate) uses imrelp's
OpenSSL driver: librelp's default, GnuTLS, speaks anonymous TLS only with ANON-DH cipher
suites, which OpenSSL (so Python's ``ssl``) does not implement, and with certificates it
always wants one from the client.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

INSTALL = "apt-get install rsyslog rsyslog-relp rsyslog-openssl"
_MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")


def _binary() -> str | None:
    found = shutil.which("rsyslogd")
    return found or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)


def missing(*modules: str) -> str | None:
    """Why rsyslogd with these modules (default: the collector's) cannot run here, or None."""
    if _binary() is None:
        return f"rsyslogd is not installed ({INSTALL})"
    found = [p for p in (_MODULES, *Path("/usr/lib").glob("*/rsyslog")) if p.is_dir()]
    for name in modules or ("imrelp", "lmnsd_ossl"):
        if not any((p / f"{name}.so").exists() for p in found):
            return f"rsyslog's {name} module is not installed ({INSTALL})"
    return None


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``ready()`` until it holds; fail (a hang, not a speed) after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def listening(port: int) -> Callable[[], bool]:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    def ready() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True
    return ready


class Daemon:
    """``rsyslogd -n -C -i NONE -f CONF`` with its work directory in ``directory``."""

    def __init__(self, directory: Path, config: str) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "rsyslog.conf"
        self.config.write_text(f'global(workDirectory="{directory}")\n' + config)
        self.log = directory / "rsyslogd.out"
        self.process: subprocess.Popen[bytes] | None = None
        self._checked = False

    def ready(self) -> bool:
        """Whether it takes messages now (what ``start()`` waits for unless told otherwise)."""
        return True

    def start(self, ready: Callable[[], bool] | None = None) -> None:
        """Start it and wait until ``ready()`` (default: ``self.ready()``); a configuration
        rsyslogd refuses fails here, with its complaint (checked once: restarts reuse it)."""
        ready = ready or self.ready
        if not self._checked:
            check = subprocess.run([str(_binary()), "-N1", "-f", str(self.config)],
                                   capture_output=True, text=True, timeout=60)
            if check.returncode != 0:
                raise AssertionError(f"rsyslog refuses its configuration:\n{check.stderr}")
            self._checked = True
        # Output to a file, never a pipe nobody reads: a full pipe would stall rsyslogd.
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [str(_binary()), "-n", "-C", "-i", "NONE", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"rsyslogd exited: {self.log.read_text()[-2000:]}")
            return ready()

        wait_until(up, "rsyslogd to start")

    def freeze(self) -> None:
        """SIGSTOP: the kernel still takes what clients send; rsyslogd reads and answers none."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (rsyslogd answers what it has and closes), or SIGKILL (it just vanishes)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 nobody uses now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_ca(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("aiolog test CA"))
          .issuer_name(name("aiolog test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(pem(key))


_CONF = """\
global(maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/cert.pem"
       defaultNetstreamDriverKeyFile="{d}/key.pem")
main_queue(queue.type="{queue}")
module(load="imudp")
module(load="imtcp")
module(load="imrelp" tls.tlslib="openssl")
module(load="imuxsock" SysSock.Use="off")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls" streamDriver.name="ossl"
      streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imrelp" address="127.0.0.1" port="{relp}" ruleset="relp")
input(type="imrelp" address="127.0.0.1" port="{relptls}" ruleset="relptls" tls="on"
      tls.caCert="{d}/ca.pem" tls.myCert="{d}/cert.pem" tls.myPrivKey="{d}/key.pem")
input(type="imrelp" address="127.0.0.1" port="{relpmtls}" ruleset="relptls" tls="on"
      tls.caCert="{d}/ca.pem" tls.myCert="{d}/cert.pem" tls.myPrivKey="{d}/key.pem"
      tls.authMode="certvalid")
input(type="imuxsock" socket="{d}/log.sock" ruleset="unix" useSpecialParser="off"
      parseHostname="on")
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
ruleset(name="relp") {{ action(type="omfile" file="{d}/relp.log" template="raw") }}
ruleset(name="relptls") {{ action(type="omfile" file="{d}/relptls.log" template="raw") }}
ruleset(name="unix") {{ action(type="omfile" file="{d}/unix.log" template="raw") }}
*.* action(type="omfile" file="{d}/rsyslogd.log")
"""


class Rsyslogd(Daemon):
    """The collector, on loopback ports that stay the same across ``stop()`` and ``start()``."""

    def __init__(self, queue: str = "Direct") -> None:
        """``queue``: the main queue's type; "LinkedList" is rsyslog's default (in memory)."""
        # A short directory: a unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="aiolog-rsyslog-", dir="/tmp"))
        self.ports = {"udp": free_port(socket.SOCK_DGRAM), "tcp": free_port(socket.SOCK_STREAM),
                      **{name: free_port(socket.SOCK_STREAM)
                         for name in ("tls", "relp", "relptls", "relpmtls")}}
        self.unix_socket = str(self.dir / "log.sock")
        _make_ca(self.dir)
        super().__init__(self.dir, _CONF.format(d=self.dir, queue=queue, **self.ports))

    def address(self, transport: str) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[transport])

    def client_context(self, *, certificate: bool = False) -> ssl.SSLContext:
        """Verifies the server by the test CA; ``certificate``: shows the server's certificate
        as the client's too (the test CA signed it: what "relpmtls" checks)."""
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        if certificate:
            context.load_cert_chain(self.dir / "cert.pem", self.dir / "key.pem")
        return context

    def ready(self) -> bool:
        return os.path.exists(self.unix_socket) and all(
            listening(port)() for name, port in self.ports.items() if name != "udp")

    def stop(self, *, kill: bool = False) -> None:
        super().stop(kill=kill)
        try:
            os.unlink(self.unix_socket)  # a restart makes it anew
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def text(self, name: str) -> str:
        try:
            return (self.dir / f"{name}.log").read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def ids(self, name: str, marker: str) -> list[int]:
        """The numbers after ``marker=`` in every message that arrived, in arrival order."""
        return [int(n) for n in re.findall(re.escape(marker) + r"=(\d+)\b", self.text(name))]

    def wait_for(self, name: str, marker: str, count: int, settle: float = 1.0,
                 limit: float = 30.0) -> list[int]:
        """The ids that arrived, once ``count`` did or nothing more came for ``settle`` s."""
        deadline = time.monotonic() + limit
        last, since = -1, time.monotonic()
        while True:
            found = self.ids(name, marker)
            if len(found) >= count:
                return found
            if len(found) != last:
                last, since = len(found), time.monotonic()
            elif time.monotonic() - since > settle or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
