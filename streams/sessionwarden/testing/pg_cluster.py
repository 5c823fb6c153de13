"""A throwaway PostgreSQL cluster for tests, benchmarks and the demo: initdb and pg_ctl in a temp
directory, listening on 127.0.0.1 only, on a free port; run as the ``postgres`` user when the
caller is root (PostgreSQL refuses to run as root).

    with TempCluster() as pg:
        psycopg.connect(pg.dsn())            # superuser "postgres", database "postgres"

``python -m sessionwarden.testing.pg_cluster`` starts one and prints its DSN until interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from sessionwarden.errors import SessionwardenError

DEFAULT_BINDIRS = ("/usr/lib/postgresql/15/bin",)
SUPERUSER = "postgres"
_INSTALL_HINT = (
    "install the PostgreSQL 15 server (Debian/Ubuntu: `apt-get install postgresql-15`), "
    "or set SESSIONWARDEN_PG_BINDIR to a directory holding initdb and pg_ctl"
)


class ClusterError(SessionwardenError):
    """The throwaway cluster cannot be created or started."""


def find_bindir(env: Mapping[str, str] | None = None) -> Path:
    """The directory of initdb/pg_ctl: $SESSIONWARDEN_PG_BINDIR, else PostgreSQL 15's."""
    given = (os.environ if env is None else env).get("SESSIONWARDEN_PG_BINDIR")
    candidates = [given] if given else []
    candidates += DEFAULT_BINDIRS
    for c in candidates:
        path = Path(c)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    raise ClusterError(
        f"no PostgreSQL server binaries (initdb, pg_ctl) in {', '.join(candidates)}: "
        + _INSTALL_HINT
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempCluster:
    """A PostgreSQL cluster in a temp directory, removed on exit. ``durable=False`` (tests)
    turns fsync off; benchmarks keep PostgreSQL's defaults."""

    def __init__(self, durable: bool = False, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.durable = durable
        self.port = 0
        self.dir: Path | None = None
        self._run_as: list[str] = []

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def start(self) -> TempCluster:
        self.dir = Path(tempfile.mkdtemp(prefix="sessionwarden-pg-"))
        if os.geteuid() == 0:
            self._run_as = self._as_postgres_user(self.dir)
        data = self.dir / "data"
        self._run(
            "initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-instructions", "--no-sync",
        )  # fmt: skip
        options = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "200",
            "shared_buffers": "64MB",
        }
        if not self.durable:
            options.update(fsync="off", full_page_writes="off", synchronous_commit="off")
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in options.items())
        for _attempt in range(3):  # the port is free when chosen, but another may take it
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl", "-D", str(data), "-l", str(self.dir / "server.log"), "-w",
                    "-t", "60", "-o", f"-p {self.port}", "start",
                )  # fmt: skip
                return self
            except ClusterError:
                if "could not bind" not in self.server_log():
                    raise
        raise ClusterError("no free port for PostgreSQL after 3 attempts")

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.dir / "data" / "postmaster.pid").exists():
            with contextlib.suppress(ClusterError):
                self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def server_log(self) -> str:
        log = self.dir / "server.log" if self.dir else None
        return log.read_text(errors="replace")[-4000:] if log and log.exists() else ""

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._run_as, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise ClusterError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                f"\n{self.server_log()}"
            )

    @staticmethod
    def _as_postgres_user(directory: Path) -> list[str]:
        runuser = shutil.which("runuser")
        try:
            import pwd

            account = pwd.getpwnam("postgres")
        except KeyError:
            account = None
        if runuser is None or account is None:
            raise ClusterError(
                "running as root: PostgreSQL must run as the `postgres` user, and there is none"
                " (or no runuser): " + _INSTALL_HINT
            )
        os.chown(directory, account.pw_uid, account.pw_gid)
        return [runuser, "-u", "postgres", "--"]

    def __enter__(self) -> TempCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> int:
    try:
        with TempCluster() as pg:
            print(pg.dsn(), flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except ClusterError as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
