#!/usr/bin/env python3
"""Run a single-node Apache Kafka (KRaft) on 127.0.0.1 from the official Maven Central jars.

    python infra/kafka/broker.py up       # fetch jars if needed, format on first start, wait ready
    python infra/kafka/broker.py down     # stop by recorded pid, remove data
    python infra/kafka/broker.py status   # exit 0 when a broker answers metadata requests
    python infra/kafka/broker.py fetch    # only download the jars into the cache

Environment: KAFKA_PORT (default 9092; the controller uses KAFKA_PORT+1), SESSIONWARDEN_HOME
(runtime directory, default <repo>/.kafka), SESSIONWARDEN_CACHE (jar cache, default
~/.cache/sessionwarden), KAFKA_READY_TIMEOUT (seconds, default 90). When
KAFKA_BOOTSTRAP_SERVERS is set, `up` starts nothing and only checks that cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
POM = HERE / "pom.xml"
TEMPLATE = HERE / "server.properties.in"
LOG4J = HERE / "log4j2.properties"


def kafka_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not node.text:
        raise SystemExit(f"kafka.version missing from {POM}")
    return node.text.strip()


def home() -> Path:
    return Path(os.environ.get("SESSIONWARDEN_HOME", REPO / ".kafka"))


def port() -> int:
    return int(os.environ.get("KAFKA_PORT", "9092"))


def libs_dir() -> Path:
    cache = Path(os.environ.get("SESSIONWARDEN_CACHE", Path.home() / ".cache" / "sessionwarden"))
    return cache / f"kafka-{kafka_version()}" / "libs"


def say(msg: str) -> None:
    print(f"[kafka] {msg}", flush=True)


def fail(msg: str) -> None:
    print(f"[kafka] error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def check_java() -> str:
    java = shutil.which("java")
    if java is None:
        fail(
            "Java 17+ is required to run the broker and was not found on PATH. "
            "Install a JDK/JRE 17 or later "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
    if major < 17:
        found = out.strip().splitlines()[0] if out else "?"
        fail(
            f"Java 17+ is required (Kafka 4.x), found: {found}. "
            "Install openjdk-17-jre-headless or newer and put it first on PATH."
        )
    return java


def fetch() -> Path:
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        fail(
            "Maven is required to fetch the Kafka jars from Maven Central "
            "and was not found on PATH. "
            "Install it (Debian/Ubuntu: apt-get install maven)."
        )
    say(f"fetching Apache Kafka {kafka_version()} jars with Maven into {libs}")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={tmp}",
    ]
    if subprocess.run(cmd).returncode != 0:
        fail("Maven could not fetch the Kafka jars (see its output above).")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.touch()
    return libs


def bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{port()}"


def metadata_ok(servers: str, timeout: float = 3.0) -> bool:
    """True when the cluster answers a metadata request (needs confluent-kafka)."""
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:  # before the virtualenv exists: fall back to a TCP connect
        host, _, p = servers.split(",")[0].rpartition(":")
        try:
            with socket.create_connection((host, int(p)), timeout=timeout):
                return True
        except OSError:
            return False
    admin = AdminClient(
        {"bootstrap.servers": servers, "log_level": 0, "socket.timeout.ms": int(timeout * 1000)}
    )
    try:
        md = admin.list_topics(timeout=timeout)
        return bool(md.brokers)
    except Exception:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid() -> int | None:
    pidfile = home() / "broker.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def write_config(h: Path) -> Path:
    text = TEMPLATE.read_text()
    text = text.replace("@PORT@", str(port())).replace("@CONTROLLER_PORT@", str(port() + 1))
    text = text.replace("@DATA_DIR@", str(h / "data"))
    cfg = h / "server.properties"
    cfg.write_text(text)
    return cfg


def java_cmd(
    java: str, libs: Path, main: str, *args: str, heap: str = "512m", logs: Path | None = None
) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        f"-Dkafka.logs.dir={logs or home() / 'logs'}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def log_tail(lines: int = 60) -> str:
    log = home() / "logs" / "server.log"
    stdout = home() / "logs" / "stdout.log"
    chunks = []
    for f in (log, stdout):
        if f.exists():
            chunks.append(
                f"--- {f} ---\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
            )
    return "\n".join(chunks) or "(no broker log)"


def up() -> int:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        servers = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        if not metadata_ok(servers, timeout=10):
            fail(f"KAFKA_BOOTSTRAP_SERVERS={servers} does not answer metadata requests")
        say(f"using the cluster at {servers}; starting nothing")
        return 0
    pid = read_pid()
    if pid is not None and metadata_ok(bootstrap()):
        say(f"already up (pid {pid}) on {bootstrap()}")
        return 0
    if pid is None and metadata_ok(bootstrap(), timeout=1):
        say(f"a broker not started from this checkout already answers on {bootstrap()}; using it")
        return 0
    java = check_java()
    libs = fetch()
    h = home()
    (h / "logs").mkdir(parents=True, exist_ok=True)
    cfg = write_config(h)
    started = time.monotonic()
    if pid is None:
        if not (h / "data" / "meta.properties").exists():
            format_storage(java, libs, cfg)
        pid = launch(java, libs, h, cfg)
    return wait_ready(pid, started)


def format_storage(java: str, libs: Path, cfg: Path) -> None:
    """KRaft storage for a new single-node cluster (a fresh cluster id)."""
    cluster_id = (
        subprocess.run(
            java_cmd(java, libs, "kafka.tools.StorageTool", "random-uuid", heap="128m"),
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    tool = ("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(cfg), "--standalone")
    fmt = subprocess.run(java_cmd(java, libs, *tool, heap="128m"), capture_output=True, text=True)
    if fmt.returncode != 0:
        fail(f"formatting storage failed:\n{fmt.stdout}\n{fmt.stderr}")
    say(f"formatted storage (cluster id {cluster_id})")


def launch(java: str, libs: Path, h: Path, cfg: Path) -> int:
    """Start the broker in its own session (it outlives this command); record its pid."""
    with open(h / "logs" / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            java_cmd(java, libs, "kafka.Kafka", str(cfg)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (h / "broker.pid").write_text(f"{proc.pid}\n")
    say(f"started broker pid {proc.pid} on {bootstrap()}")
    return proc.pid


def wait_ready(pid: int, started: float) -> int:
    """Until the broker answers metadata requests; fails (with the log tail) if it exits."""
    deadline = started + float(os.environ.get("KAFKA_READY_TIMEOUT", "90"))
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            print(log_tail(), file=sys.stderr)
            fail("the broker process exited during start-up (log tail above)")
        if metadata_ok(bootstrap(), timeout=2):
            say(f"ready on {bootstrap()} after {time.monotonic() - started:.1f}s")
            return 0
        time.sleep(0.25)
    print(log_tail(), file=sys.stderr)
    fail("the broker did not answer metadata requests within the deadline (log tail above)")
    return 1


def stop_group(pid: int, timeout: float = 30) -> None:
    """SIGTERM to the process group a server was started in, SIGKILL if it outlives ``timeout``."""
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def down() -> int:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        say("KAFKA_BOOTSTRAP_SERVERS is set: nothing of ours to stop")
        return 0
    h = home()
    pid = read_pid()
    if pid is not None:
        stop_group(pid)
        say(f"stopped broker pid {pid}")
    else:
        say("no broker of ours is running")
    shutil.rmtree(h, ignore_errors=True)
    return 0


def status() -> int:
    ok = metadata_ok(bootstrap())
    say(f"{bootstrap()}: {'up' if ok else 'down'}")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    commands = {"up": up, "down": down, "status": status, "fetch": lambda: (fetch(), 0)[1]}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
