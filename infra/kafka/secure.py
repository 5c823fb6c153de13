#!/usr/bin/env python3
"""A second, secured single-node Kafka (KRaft) on 127.0.0.1: SASL_SSL with SCRAM, TLS
certificates made at start-up, SCRAM users created at format time, the standard authorizer.

    python infra/kafka/secure.py up      # certificates, users, format, start, wait ready
    python infra/kafka/secure.py down    # stop by recorded pid, remove everything
    python infra/kafka/secure.py env USER  # the SESSIONWARDEN_KAFKA_* settings of a user

It never touches the plaintext development broker (infra/kafka/broker.py): its own directory
(SESSIONWARDEN_SECURE_HOME, default <repo>/.kafka-secure) and ports (KAFKA_SECURE_PORT,
default 9192; the controller uses the next port).

* Clients: one SASL_SSL listener; SCRAM-SHA-256 and -512 for every user of USERS, with random
  passwords in ``secrets/<user>.password`` (mode 0600). Nobody but ``admin`` (a super user)
  may do anything until ACLs are created (``sessionwarden acls --apply`` as admin).
* TLS: a throwaway CA signs the broker's certificate for IP 127.0.0.1 and ``localhost``; the
  CA key is deleted once it has signed, and nothing of it is ever committed. Clients trust
  ``tls/ca.pem``.
* The controller listener speaks mutual TLS (client certificates required), so the broker's
  own certificate is its principal there; no unauthenticated principal is a super user.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import broker as plain  # noqa: E402 - the sibling module: jars, Java, the template

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
USERS = (
    "admin",
    "sessionwarden-enforcer",
    "sessionwarden-detect",
    "sessionwarden-producer",
    "sessionwarden-service",
    "sessionwarden-security",
    "sessionwarden-sink",
    "sessionwarden-operator",
)
BROKER_PRINCIPAL = "User:CN=127.0.0.1"  # the broker's certificate, on the controller listener


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        plain.fail(f"{what} failed:\n{done.stdout}\n{done.stderr}")


def make_ca(directory: Path, name: str = "Sessionwarden local CA") -> tuple[Path, Path]:
    """A self-signed CA (EC P-256, valid 2 days): returns (certificate, key)."""
    if shutil.which("openssl") is None:
        plain.fail("openssl is required for the secured broker (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca.key"
    _run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        "creating a CA",
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def make_broker_keystore(tls: Path, password: str) -> Path:
    """A CA and a broker certificate for 127.0.0.1/localhost in a PKCS#12 keystore; the CA key
    is deleted afterwards, so no further certificate can be signed by it."""
    ca_cert, ca_key = make_ca(tls)
    key, csr, cert = tls / "broker.key", tls / "broker.csr", tls / "broker.pem"
    ext = tls / "broker.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"
    )
    _run(
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        "creating the broker key",
    )  # fmt: skip
    _run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
        "signing the broker certificate",
    )  # fmt: skip
    keystore = tls / "broker.p12"
    _run(
        ["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
         "-certfile", str(ca_cert), "-name", "broker", "-out", str(keystore),
         "-passout", f"pass:{password}"],
        "writing the broker keystore",
    )  # fmt: skip
    for leftover in (ca_key, key, csr, ext, tls / "ca.srl"):
        leftover.unlink(missing_ok=True)
    keystore.chmod(0o600)
    return keystore


class SecureBroker:
    """One secured broker in its own directory; ``start()`` and ``stop()`` are idempotent."""

    def __init__(self, home: Path, port: int, users: tuple[str, ...] = USERS) -> None:
        self.home = home
        self.port = port
        self.users = users
        self.bootstrap = f"127.0.0.1:{port}"
        self.ca_file = home / "tls" / "ca.pem"
        self._pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None  # when this process started it

    def password_file(self, user: str) -> Path:
        return self.home / "secrets" / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def settings_env(self, user: str) -> dict[str, str]:
        """The Sessionwarden settings that log in as ``user``."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "SESSIONWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SESSIONWARDEN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SESSIONWARDEN_KAFKA_SASL_USERNAME": user,
            "SESSIONWARDEN_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "SESSIONWARDEN_KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def client_config(self, user: str) -> dict[str, str]:
        """librdkafka properties that log in as ``user``."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca_file),
        }

    def _write_secrets(self) -> str:
        """Random passwords, one file per user (0600); returns the keystore password."""
        folder = self.home / "secrets"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for user in self.users:
            path = self.password_file(user)
            path.write_text(secrets.token_urlsafe(18) + "\n")
            path.chmod(0o600)
        keystore_password = secrets.token_urlsafe(18)
        return keystore_password

    def _config(self, keystore: Path, keystore_password: str) -> Path:
        text = plain.TEMPLATE.read_text()
        text = text.replace("@PORT@", str(self.port)).replace(
            "@CONTROLLER_PORT@", str(self.port + 1)
        )
        text = text.replace("@DATA_DIR@", str(self.home / "data"))
        replaced = {
            "listeners": f"SASL_SSL://{self.bootstrap},CONTROLLER://127.0.0.1:{self.port + 1}",
            "advertised.listeners": f"SASL_SSL://{self.bootstrap}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
        }
        lines = [
            f"{key}={replaced[key]}" if (key := line.partition("=")[0]) in replaced else line
            for line in text.splitlines()
        ]
        admin = self.password("admin")
        lines += [
            "# --- secured mode (infra/kafka/secure.py) ---",
            f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            *(
                f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="admin" password="{admin}";'
                for mechanism in MECHANISMS
            ),
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={keystore}",
            f"ssl.keystore.password={keystore_password}",
            f"ssl.key.password={keystore_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "ssl.client.auth=none",
            "listener.name.controller.ssl.client.auth=required",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:admin;{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found=false",
        ]
        cfg = self.home / "server.properties"
        cfg.write_text("\n".join(lines) + "\n")
        cfg.chmod(0o600)
        return cfg

    def _java(self, java: str, libs: Path, main: str, *args: str, heap: str) -> list[str]:
        return [
            java, f"-Xmx{heap}", "-Xms64m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={plain.LOG4J}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self, java: str, libs: Path, cfg: Path) -> None:
        # Kafka's cluster id: 16 random bytes, URL-safe base64 without padding, never starting
        # with "-" (a command-line option); what `kafka-storage random-uuid` prints.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        scram = []
        for user in self.users:
            for mechanism in MECHANISMS:
                scram += [
                    "--add-scram",
                    f"{mechanism}=[name={user},password={self.password(user)}]",
                ]
        fmt = self._java(
            java, libs, "kafka.tools.StorageTool", "format", "-t", cluster_id,
            "-c", str(cfg), "--standalone", *scram, heap="128m",
        )  # fmt: skip
        done = subprocess.run(fmt, capture_output=True, text=True)
        if done.returncode != 0:  # the output names no password: only the command line did
            plain.fail(f"formatting the secured broker's storage failed:\n{done.stderr[-2000:]}")

    def ready(self, timeout: float = 2.0) -> bool:
        from confluent_kafka.admin import AdminClient

        config = {**self.client_config("admin"), "log_level": 0}
        try:
            return bool(AdminClient(config).list_topics(timeout=timeout).brokers)
        except Exception:
            return False

    def start(self, timeout: float = 120.0) -> None:
        if self._pid is not None and plain.pid_alive(self._pid) and self.ready():
            return
        java = plain.check_java()
        libs = plain.fetch()
        shutil.rmtree(self.home, ignore_errors=True)
        (self.home / "logs").mkdir(parents=True)
        keystore_password = self._write_secrets()
        keystore = make_broker_keystore(self.home / "tls", keystore_password)
        cfg = self._config(keystore, keystore_password)
        started = time.monotonic()
        self._format(java, libs, cfg)
        with open(self.home / "logs" / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                self._java(java, libs, "kafka.Kafka", str(cfg), heap="384m"),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid, self._proc = proc.pid, proc
        (self.home / "broker.pid").write_text(f"{proc.pid}\n")
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                plain.fail(f"the secured broker exited during start-up; see {self.home}/logs")
            if self.ready():
                plain.say(f"secured broker ready on {self.bootstrap} (SASL_SSL)")
                return
            time.sleep(0.25)
        self.stop()
        plain.fail("the secured broker did not answer within the deadline")

    def stop(self) -> None:
        pid = self._pid or _read_pid(self.home)
        if pid is not None and plain.pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10  # its data is removed anyway
            # A child of this process stays a zombie, alive to kill(pid, 0), until it is reaped.
            while self._running(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._running(pid):
                os.killpg(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
        self._pid, self._proc = None, None
        shutil.rmtree(self.home, ignore_errors=True)

    def _running(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return plain.pid_alive(pid)


def _read_pid(home: Path) -> int | None:
    try:
        return int((home / "broker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _from_env() -> SecureBroker:
    home = Path(os.environ.get("SESSIONWARDEN_SECURE_HOME", plain.REPO / ".kafka-secure"))
    return SecureBroker(home, int(os.environ.get("KAFKA_SECURE_PORT", "9192")))


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        _from_env().start()
    elif argv[:1] == ["down"]:
        _from_env().stop()
    elif argv[:1] == ["env"] and len(argv) == 2:
        for key, value in _from_env().settings_env(argv[1]).items():
            print(f"export {key}={value}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
