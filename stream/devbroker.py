"""A real single-node Kafka broker on loopback, for development and integration tests.

The broker is Apache Kafka itself, resolved from Maven Central into a cache once and
run as one combined broker+controller JVM (KRaft). :class:`DevBroker` drives it from
Python; ``engagement-stream dev-broker`` (``stream.devbroker_cli``) drives it from a
shell and remembers the running broker in a small JSON state file.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import ctypes
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

# aiokafka ships no type information (no py.typed marker).
from aiokafka.admin import AIOKafkaAdminClient

from stream.settings import SECURITY_PROTOCOLS, KafkaSecurity

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
SASL_USERNAME = "engagement"
SASL_PASSWORD = "engagement-secret"  # a throwaway local test user

# Every JVM we start carries this system property, so our brokers can be told
# apart from any other Kafka on the machine (and found if one is left behind).
_MARKER = "-Des.devbroker.data="
_READY_FILE = "READY"

_POM = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `engagement-stream dev-broker fetch`: the jars of one Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>engagement-stream</groupId>
  <artifactId>dev-broker</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <!-- Kafka logs through slf4j 1.7: bind it to log4j2 so the log is written. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """\
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
# Per-request and per-partition chatter that buries the lifecycle messages.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=CLIENT://127.0.0.1:{port}
listener.security.protocol.map=CLIENT:{protocol},CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
log.dirs={log_dirs}
# One node: every internal topic can have only one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests must not wait for a group to settle, and a missing topic must fail
# loudly instead of appearing on first use.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# A laptop, not a server.
num.network.threads=2
num.io.threads=4
"""

_SSL_PROPERTIES = """\
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca_file}
"""

# One user for every mechanism. The broker reaches itself with PLAIN, which reads
# no metadata; SCRAM credentials are written into the metadata at format time.
_SASL_PROPERTIES = """\
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.client.plain.sasl.jaas.config=\\
  org.apache.kafka.common.security.plain.PlainLoginModule required \\
  username="{user}" password="{password}" user_{user}="{password}";
listener.name.client.scram-sha-256.sasl.jaas.config=\\
  org.apache.kafka.common.security.scram.ScramLoginModule required \\
  username="{user}" password="{password}";
listener.name.client.scram-sha-512.sasl.jaas.config=\\
  org.apache.kafka.common.security.scram.ScramLoginModule required \\
  username="{user}" password="{password}";
"""


class DevBrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


def cache_root() -> Path:
    """Where fetched jars live: ``$ES_CACHE_DIR`` or ``~/.cache/engagement-stream``."""
    override = os.environ.get("ES_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "engagement-stream"


def fetch_kafka(root: Path | None = None) -> Path:
    """Resolve the pinned Kafka's jars with Maven once and return their folder.

    Later calls find the finished folder and neither run Maven nor need a network.

    Raises:
        DevBrokerError: Maven is missing or could not resolve the jars.
    """
    home = (root or cache_root()) / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if (home / _READY_FILE).exists():
        return libs

    home.mkdir(parents=True, exist_ok=True)
    # A lock, because a test session and a shell may fetch into the same cache.
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / _READY_FILE).exists():
            _run_maven(home, libs)
            (home / _READY_FILE).write_text(f"kafka_2.13 {KAFKA_VERSION}\n")
    return libs


def _run_maven(home: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevBrokerError(
            "expected Maven (mvn) on PATH to fetch Kafka's jars, found none; "
            "install Maven (apt-get install maven) and run again"
        )

    (home / "pom.xml").write_text(_POM.format(version=KAFKA_VERSION))
    partial = home / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    logger.info("Fetching Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
    command = [mvn, "-q", "-B", "dependency:copy-dependencies"]
    command += ["-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
    result = subprocess.run(command, cwd=home, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevBrokerError(
            f"expected Maven to resolve org.apache.kafka:kafka_2.13:{KAFKA_VERSION}, "
            f"it exited with {result.returncode}:\n{_tail(result.stdout)}\n"
            "check that Maven Central (or ~/.m2) is reachable and run again"
        )

    # Moved into place only when whole, so an interrupted fetch is simply redone.
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def running_broker_pids(data_dir: Path | None = None) -> list[int]:
    """Process ids of live broker JVMs this module started, of one data dir if given."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        # A zombie's command line reads as empty, so a dead broker is not counted.
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            marks = [arg for arg in cmdline.split("\0") if arg.startswith(_MARKER)]
            if marks and (data_dir is None or marks[0] == f"{_MARKER}{data_dir}"):
                pids.append(int(entry.name))
    return pids


class DevBroker:
    """One Kafka broker+controller JVM on 127.0.0.1, started and stopped from Python.

    Usable as a context manager. ``security_protocol`` picks the client listener:
    PLAINTEXT; SASL_PLAINTEXT or SASL_SSL with the user ``SASL_USERNAME`` known to
    PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; SSL or SASL_SSL with a throwaway CA whose
    certificate is :attr:`ca_file`.

    Args:
        port: Client port; a free one when None.
        data_dir: Holds the KRaft storage, config and ``broker.log``; a fresh temporary
            directory when None. An already formatted directory is started as it is.
        security_protocol: One of ``stream.settings.SECURITY_PROTOCOLS``.
        keep_data_dir: Keep a temporary data dir after :meth:`stop`.
        die_with_parent: Have the kernel stop the JVM when the thread that started
            it ends, so a killed test run leaves no broker behind.
        start_timeout_seconds: How long :meth:`start` waits for the broker.
        heap: The JVM's maximum heap, as ``-Xmx`` takes it.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        security_protocol: str = "PLAINTEXT",
        keep_data_dir: bool = False,
        die_with_parent: bool = True,
        start_timeout_seconds: float = 90.0,
        heap: str = "512m",
    ) -> None:
        if security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"security_protocol={security_protocol!r}: expected one of "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        self.port = port
        self.controller_port: int | None = None
        self.data_dir = data_dir.resolve() if data_dir else None
        self.security_protocol = security_protocol
        self.keep_data_dir = keep_data_dir
        self.die_with_parent = die_with_parent
        self.start_timeout_seconds = start_timeout_seconds
        self.heap = heap
        self._owns_data_dir = data_dir is None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for clients and ``KAFKA_BOOTSTRAP_SERVERS``."""
        if self.port is None:
            raise DevBrokerError("expected a started broker, this one has no port yet")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker JVM's process id while it runs."""
        return self._process.pid if self._process and self.is_running() else None

    @property
    def log_path(self) -> Path:
        """The broker's own log (stdout and stderr of the JVM)."""
        return self._dir / "broker.log"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients trust, for SSL and SASL_SSL."""
        return self._dir / "tls" / "ca.pem" if "SSL" in self.security_protocol else None

    @property
    def owns_data_dir(self) -> bool:
        """True when the data dir is a temporary one this broker made."""
        return self._owns_data_dir

    def security(self, sasl_mechanism: str = "SCRAM-SHA-256") -> KafkaSecurity:
        """Client security settings that reach this broker's listener."""
        uses_sasl = self.security_protocol.startswith("SASL_")
        ca_file = self.ca_file
        return KafkaSecurity(
            protocol=self.security_protocol,
            sasl_mechanism=sasl_mechanism if uses_sasl else None,
            sasl_username=SASL_USERNAME if uses_sasl else None,
            sasl_password=SASL_PASSWORD if uses_sasl else None,
            ssl_cafile=str(ca_file) if ca_file else None,
        )

    def client_options(self, sasl_mechanism: str = "SCRAM-SHA-256") -> dict[str, Any]:
        """Keyword arguments for any aiokafka client of this broker."""
        security = self.security(sasl_mechanism)
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": security.protocol,
        }
        if security.ssl_cafile:
            options["ssl_context"] = ssl.create_default_context(
                cafile=security.ssl_cafile
            )
        if security.uses_sasl:
            options["sasl_mechanism"] = security.sasl_mechanism
            options["sasl_plain_username"] = security.sasl_username
            options["sasl_plain_password"] = security.sasl_password
        return options

    def is_running(self) -> bool:
        """True while the broker JVM is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> DevBroker:
        """Format storage if needed, start the JVM and wait until it serves requests.

        Returns:
            This broker, for chaining.

        Raises:
            DevBrokerError: the JVM exited or did not answer in time; the message
                ends with the tail of :attr:`log_path`.
        """
        if self.is_running():
            return self
        if self.port is not None and _accepts_connections(f"127.0.0.1:{self.port}"):
            raise DevBrokerError(
                f"expected port {self.port} to be free for a new broker, but "
                "something already listens there; pick another --port or stop it"
            )
        libs = fetch_kafka()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="es-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()

        # Anything going wrong after this point, Ctrl-C included, must not leave
        # a JVM behind; the data dir stays so that its log can be read.
        try:
            self._write_config()
            if not (self._dir / "kraft" / "meta.properties").exists():
                self._format_storage(libs)
            self._launch(libs)
            self._wait_until_ready()
        except BaseException:
            self._terminate()
            raise
        return self

    def restart(self) -> None:
        """Stop the JVM and start it again on the same ports and data dir.

        Topics, records and committed offsets survive, as in a real broker restart.
        """
        self._terminate()
        try:
            self._launch(fetch_kafka())
            self._wait_until_ready()
        except BaseException:
            self._terminate()
            raise

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL after the timeout); drop a temp dir."""
        self._terminate(timeout_seconds)
        if self._owns_data_dir and not self.keep_data_dir and self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _dir(self) -> Path:
        if self.data_dir is None:
            raise DevBrokerError("expected a data dir, this broker has not started")
        return self.data_dir

    def _write_config(self) -> None:
        config = _SERVER_PROPERTIES.format(
            port=self.port,
            controller_port=self.controller_port,
            protocol=self.security_protocol,
            log_dirs=self._dir / "kraft",
        )
        if "SSL" in self.security_protocol:
            keystore, ca_file = _make_tls_files(self._dir / "tls")
            config += _SSL_PROPERTIES.format(keystore=keystore, ca_file=ca_file)
        if self.security_protocol.startswith("SASL_"):
            config += _SASL_PROPERTIES.format(
                user=SASL_USERNAME, password=SASL_PASSWORD
            )

        (self._dir / "server.properties").write_text(config)
        (self._dir / "log4j2.properties").write_text(_LOG4J2)

    def _format_storage(self, libs: Path) -> None:
        # A Kafka cluster id is 16 random bytes in unpadded URL-safe base64.
        cluster_id = _new_cluster_id()
        command = [*self._java(libs), "kafka.tools.StorageTool", "format"]
        command += ["--config", str(self._dir / "server.properties")]
        command += ["--cluster-id", cluster_id.rstrip("=")]
        if self.security_protocol.startswith("SASL_"):
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                credential = f"name={SASL_USERNAME},password={SASL_PASSWORD}"
                command += ["--add-scram", f"{mechanism}=[{credential}]"]

        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise DevBrokerError(
                f"expected Kafka's storage tool to format {self._dir / 'kraft'}, it "
                f"exited with {result.returncode}:\n"
                f"{_tail(result.stdout + result.stderr)}"
                "\nremove the directory or pass another --data-dir"
            )

    def _java(self, libs: Path) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = (
            str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        )
        if java is None:
            raise DevBrokerError(
                "expected a Java 17+ runtime (java on PATH or JAVA_HOME), found none; "
                "install one (apt-get install openjdk-17-jre-headless)"
            )
        return [
            java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
            f"{_MARKER}{self._dir}",
            "-cp",
            f"{libs}/*",
        ]

    def _launch(self, libs: Path) -> None:
        config = self._dir / "server.properties"
        command = [*self._java(libs), "kafka.Kafka", str(config)]
        # Only the main thread lives as long as the process: a death signal tied
        # to a worker thread would stop the broker when that thread ends.
        tie_to_parent = (
            self.die_with_parent
            and threading.current_thread() is threading.main_thread()
        )
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the test run reaches the
                # broker through its owner, which stops it in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if tie_to_parent else None,
            )
        logger.info(
            "Started Kafka %s (pid %d) on %s, %s, log %s",
            KAFKA_VERSION,
            self._process.pid,
            self.bootstrap_servers,
            self.security_protocol,
            self.log_path,
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_seconds
        while not (_accepts_connections(self.bootstrap_servers) and self._answers()):
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
                raise DevBrokerError(
                    f"expected the broker to start, its JVM exited with {code}; "
                    f"read {self.log_path}:\n{_tail(self.log_path.read_text())}"
                )
            if time.monotonic() > deadline:
                raise DevBrokerError(
                    f"expected the broker to answer on {self.bootstrap_servers} within "
                    f"{self.start_timeout_seconds:.0f} s, it did not; read "
                    f"{self.log_path}:\n{_tail(self.log_path.read_text())}"
                )
            time.sleep(0.25)

    def _answers(self) -> bool:
        # The probe is a real request through the client listener, so it also
        # proves that TLS and SASL are set up the way clients will use them.
        async def probe() -> bool:
            admin = AIOKafkaAdminClient(
                request_timeout_ms=5000, **self.client_options()
            )
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                return bool(cluster["brokers"])
            finally:
                await admin.close()

        try:
            return _run_coroutine(probe)
        except Exception as exc:  # any failure means "not yet"; the caller times out
            logger.debug("Broker on %s not ready yet: %r", self.bootstrap_servers, exc)
            return False

    def _terminate(self, timeout_seconds: float = 30.0) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is not None:
            return

        logger.info("Stopping Kafka broker (pid %d)", process.pid)
        process.terminate()
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            logger.warning(
                "Kafka broker (pid %d) ignored SIGTERM for %.0f s; killing it",
                process.pid,
                timeout_seconds,
            )
            process.kill()
            process.wait()


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, bool]]) -> bool:
    """Run ``factory()`` to completion, also when called from inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # A running loop cannot be blocked on; give the probe a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: PR_SET_PDEATHSIG (1) asks the
    # kernel for SIGTERM when the parent goes, however the parent dies.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _new_cluster_id() -> str:
    """A random KRaft cluster id (16 bytes, base64url, unpadded).

    Kafka's storage tool parses its arguments itself: an id that starts with "-"
    would be read as an option, so such ids (1 in 64) are drawn again.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()
        if not cluster_id.startswith("-"):
            return cluster_id.rstrip("=")


def _accepts_connections(bootstrap_servers: str) -> bool:
    host, port = bootstrap_servers.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _make_tls_files(directory: Path) -> tuple[Path, Path]:
    """Make a throwaway CA and a broker certificate for 127.0.0.1 it signed, once.

    Returns:
        The broker's PEM keystore (PKCS#8 key, then certificate) and the CA file.
    """
    keystore, ca_file = directory / "broker-keystore.pem", directory / "ca.pem"
    if keystore.exists() and ca_file.exists():
        return keystore, ca_file
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevBrokerError(
            "expected openssl on PATH to make test certificates, found none; "
            "install it (apt-get install openssl) or use PLAINTEXT"
        )

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "broker.ext").write_text(
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "authorityKeyIdentifier = keyid\n"
    )
    steps = [
        "req -x509 -newkey rsa:2048 -nodes -days 7 -keyout ca.key -out ca.pem"
        " -subj /CN=engagement-stream-dev-ca",
        "req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr"
        " -subj /CN=127.0.0.1",
        "x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7"
        " -extfile broker.ext -out broker.pem",
    ]
    for step in steps:
        result = subprocess.run(
            [openssl, *step.split()], cwd=directory, capture_output=True
        )
        if result.returncode != 0:
            raise DevBrokerError(
                f"expected `openssl {step.split()[0]}` to make test certificates, "
                f"it exited with {result.returncode}:\n"
                f"{_tail(result.stderr.decode(errors='replace'))}"
            )

    broker_key = (directory / "broker.key").read_text()
    keystore.write_text(broker_key + (directory / "broker.pem").read_text())
    return keystore, ca_file


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
