"""Real processes for the tests and the benchmark: start them, wait until they answer, stop them,
leave nothing behind; and what they use (children, CPU, memory), read through psutil."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import psutil

# The waits are stdlib-only so that make run's launcher and the first-run check can use them too;
# they are re-exported here, where the tests and bench have always found them.
from tools.waits import free_port as free_port
from tools.waits import wait_for_port as wait_for_port
from tools.waits import wait_until as wait_until

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.prefix) / "bin"


def wait_for_healthz(base_url: str, *, timeout: float, describe=lambda: "") -> None:
    """Until GET base_url/healthz answers 200: through daphne, that is a worker's reply."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base_url}/healthz did not answer 200 within {timeout}s:\n{describe()}")
        time.sleep(0.1)


def redis_server_binary() -> str:
    """The redis-server that make installs into .venv-redis, unless REDIS_SERVER names another."""
    binary = os.environ.get("REDIS_SERVER") or str(REPO / ".venv-redis" / "bin" / "redis-server")
    if not Path(binary).exists():
        raise RuntimeError(f"no redis-server at {binary}: run `make deps` (or set REDIS_SERVER)")
    return binary


class Process:
    """One child process, its output in a log file, in its own process group."""

    def __init__(self, name: str, args: List[str], *, env: dict, log_dir: Path, cwd: Path = REPO):
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> Optional[int]:
        return self.popen.returncode

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signum)

    def stop(self, *, timeout: float = 15.0, signum: int = signal.SIGTERM) -> Optional[int]:
        """Asks the process to stop; kills it if it has not within timeout. Returns its exit code."""
        if self.alive():
            self.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(5)
        try:
            # Children it may have left (gunicorn's workers) share its process group.
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def wait_for_log(self, text: str, *, timeout: float = 20.0, lines: int = 200) -> None:
        """Until text is in the last lines of the process's log; raises if it exits first."""

        def logged() -> bool:
            if text in self.tail(lines):
                return True
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.returncode} before logging {text!r}:\n{self.tail()}")
            return False

        wait_until(logged, timeout=timeout, message=f"{self.name} logs {text!r}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -- process trees -------------------------------------------------------------------------


def children(pid: int, *, recursive: bool = False) -> List[int]:
    """Pids of a process's children (all its descendants with recursive)."""
    return [child.pid for child in psutil.Process(pid).children(recursive=recursive)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def rss_bytes(pid: int) -> int:
    """A process's resident set size."""
    return psutil.Process(pid).memory_info().rss


def pids_by_environment(matches: Callable[[dict], bool]) -> List[int]:
    """Pids of live processes (not zombies, not this one) for whose environment `matches` is true."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() != psutil.STATUS_ZOMBIE and matches(process.environ()):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


class RedisServer:
    """A throwaway redis-server on a free loopback port that keeps nothing on disk.

    By default the redis-server of .venv-redis, in plain TCP, without a password. The options
    make it the kind of Redis the platforms hand out: another binary (Debian's has TLS), TLS
    only (`tls`: the server's cert, key and the CA file, paths; `client_certs`: clients must
    show a certificate that CA signed), a password for the default user, and ACL users
    (`users`: {name: password}, each allowed everything). `replicaof`: the port of a master on
    127.0.0.1 to replicate (with `password` as its masterauth). `sentinel`: a SentinelWatch, to
    run as a sentinel (redis-server --sentinel) watching that master instead of serving data.
    `extra_args`: more redis-server options, last.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        port: Optional[int] = None,
        name: str = "redis",
        binary: Optional[str] = None,
        tls: Optional["RedisTLS"] = None,
        password: Optional[str] = None,
        users: Optional[dict] = None,
        client_certs: bool = False,
        replicaof: Optional[int] = None,
        sentinel: Optional["SentinelWatch"] = None,
        extra_args: Optional[List[str]] = None,
    ):
        self.port = port or free_port()
        self.log_dir = log_dir
        self.name = name
        self.binary = binary
        self.tls = tls
        self.password = password
        self.users = dict(users or {})
        self.client_certs = client_certs
        self.replicaof = replicaof
        self.sentinel = sentinel
        self.extra_args = list(extra_args or [])
        self.process: Optional[Process] = None

    @property
    def url(self) -> str:
        """A URL that reaches the server as its default user; over TLS, trusting its CA."""
        credentials = f":{self.password}@" if self.password else ""
        if self.tls is None:
            return f"redis://{credentials}127.0.0.1:{self.port}/0"
        return f"rediss://{credentials}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca_file}"

    def start(self) -> "RedisServer":
        args = [self.binary or redis_server_binary()]
        if self.sentinel is not None:
            # A sentinel rewrites its configuration file: one of its own, with the master to watch.
            config = self.log_dir / f"{self.name}.conf"
            config.write_text(self.sentinel.config())
            args += [str(config), "--sentinel"]
        args += ["--bind", "127.0.0.1"]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            # TLS only: nothing answers in plain TCP, as on Heroku Redis and ElastiCache.
            args += ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-auth-clients", "yes" if self.client_certs else "no"]
            args += ["--tls-cert-file", str(self.tls.cert_file), "--tls-key-file", str(self.tls.key_file)]
            args += ["--tls-ca-cert-file", str(self.tls.ca_file)]
        if self.password:
            args += ["--requirepass", self.password]
        for user, password in self.users.items():
            args += ["--user", user, "on", f">{password}", "~*", "&*", "+@all"]
        if self.replicaof is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replicaof)]
            if self.password:
                args += ["--masterauth", self.password]
        if self.sentinel is None:
            args += ["--save", "", "--appendonly", "no", "--dir", str(self.log_dir)]
        args += self.extra_args
        self.process = Process(self.name, args, env=dict(os.environ), log_dir=self.log_dir)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Cluster:
    """What a Channels 1 site runs as: one RedisServer, daphnes and runworkers, stopped together.

    Subclasses start them; this keeps the lists, the logs of all of them, and the stopping."""

    redis: RedisServer
    daphnes: List[Process]
    workers: List[Process]

    def processes(self) -> List[Process]:
        return [*self.daphnes, *self.workers, *([self.redis.process] if self.redis.process else [])]

    def logs(self) -> str:
        return "\n".join(f"--- {process.name}\n{process.tail()}" for process in self.processes())

    def stop(self) -> None:
        for process in [*self.daphnes, *self.workers]:
            process.stop()
        self.redis.stop()


DEBIAN_REDIS_SERVER = "/usr/bin/redis-server"


class SentinelWatch:
    """What a sentinel watches: the master `service` on 127.0.0.1:`master_port`, with a quorum and
    short timeouts (milliseconds), so that a test's failover takes seconds, not minutes."""

    def __init__(
        self,
        service: str,
        master_port: int,
        *,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        auth_pass: Optional[str] = None,
    ):
        self.service = service
        self.master_port = master_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.auth_pass = auth_pass

    def config(self) -> str:
        lines = [
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
            f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {self.service} 1",
        ]
        if self.auth_pass:
            lines.append(f"sentinel auth-pass {self.service} {self.auth_pass}")
        return "\n".join(lines) + "\n"


class RedisTLS:
    """A CA of its own, and certificates it signed, as PEM files in directory.

    `cert_file` and `key_file` are the server's, valid for `hosts` (names and addresses);
    `client_cert_file` and `client_key_file` a client's, for a server that asks for one.
    """

    def __init__(self, directory: Path, *, hosts: tuple = ("127.0.0.1", "localhost")):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tests' Redis CA")])
        ca_cert = (
            self._builder(self._ca_name, self._ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self._write_cert(self.ca_file, ca_cert)
        self.cert_file, self.key_file = self._issue("server", hosts, ExtendedKeyUsageOID.SERVER_AUTH)
        self.client_cert_file, self.client_key_file = self._issue("client", ("site",), ExtendedKeyUsageOID.CLIENT_AUTH)

    def _builder(self, subject, public_key):
        import datetime

        from cryptography import x509

        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    def _issue(self, name: str, hosts: tuple, usage) -> tuple:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        self._write_cert(cert_file, cert)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file

    @staticmethod
    def _write_cert(path: Path, cert) -> None:
        from cryptography.hazmat.primitives import serialization

        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
