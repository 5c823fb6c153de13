"""A real Keycloak (the official server distribution from Maven Central) for the tests, the
benchmarks and ``infra/keycloak/keycloak.py``: fetched once, built once into a cached copy with
Sessionwarden's event listener in ``providers/``, started on 127.0.0.1 with a throwaway data
folder, and provisioned through the admin REST API.

Cache layout (``SESSIONWARDEN_CACHE``, default ``~/.cache/sessionwarden``)::

    keycloak-<version>/keycloak-quarkus-dist-<version>.zip     the download (Maven)
    keycloak-<version>/built-<key>/                            unpacked, provider added, built

``<key>`` hashes the build options and the provider's sources, so a changed provider builds a
new copy. A server runs from a hard-linked copy of the built one (own ``data/``: several servers
and checkouts share one cache), started with ``start --optimized`` and the dev-file database
(faster than ``start-dev``, which rebuilds on every profile change: docs/KEYCLOAK.md).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionwarden.errors import SessionwardenError
from sessionwarden.testing.nginx import free_port

REPO = Path(__file__).resolve().parents[3]
PROVIDER_DIR = Path(
    os.environ.get("SESSIONWARDEN_KEYCLOAK_PROVIDER", REPO / "infra" / "keycloak" / "provider")
)
PROVIDER_JAR = "sessionwarden-keycloak-events.jar"
# Build-time options of the cached copy: the dev-file database, health endpoints, and the
# experimental Shared Signals transmitter (the SSF interoperability tests use the same copy).
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true", "--features=ssf")
ADMIN_USER = "sw-admin"
LISTENER = "sessionwarden"


class KeycloakError(SessionwardenError):
    """Keycloak could not be fetched, built, started or provisioned."""


def keycloak_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(PROVIDER_DIR / "pom.xml").getroot().find("m:properties/m:keycloak.version", ns)
    if node is None or not node.text:
        raise KeycloakError(f"keycloak.version missing from {PROVIDER_DIR / 'pom.xml'}")
    return node.text.strip()


def cache_dir() -> Path:
    root = Path(os.environ.get("SESSIONWARDEN_CACHE", Path.home() / ".cache" / "sessionwarden"))
    return root / f"keycloak-{keycloak_version()}"


def _need(tool: str, why: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise KeycloakError(f"{tool} is required {why} and was not found on PATH")
    return found


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One fetch or build at a time across processes sharing the cache."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fetch(say: Any = print) -> Path:
    """The distribution zip in the cache (Maven downloads it from Maven Central once)."""
    version = keycloak_version()
    cache = cache_dir()
    zipped = cache / f"keycloak-quarkus-dist-{version}.zip"
    if zipped.exists():
        return zipped
    with _locked("fetch"):
        if zipped.exists():
            return zipped
        mvn = _need("mvn", "to fetch Keycloak from Maven Central (apt-get install maven)")
        say(f"fetching org.keycloak:keycloak-quarkus-dist:{version} with Maven into {cache}")
        partial = cache / "download.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:zip",
            f"-DoutputDirectory={partial}",
        ]
        if subprocess.run(cmd, cwd=cache).returncode != 0:
            raise KeycloakError("Maven could not fetch the Keycloak distribution (output above)")
        (partial / zipped.name).rename(zipped)
        shutil.rmtree(partial, ignore_errors=True)
    return zipped


def provider_digest() -> str:
    """What the provider jar is built from: its pom and sources."""
    digest = hashlib.sha256()
    files = [PROVIDER_DIR / "pom.xml", *sorted((PROVIDER_DIR / "src" / "main").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(PROVIDER_DIR)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_key() -> str:
    text = "\n".join([keycloak_version(), *BUILD_OPTIONS, provider_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_provider(say: Any = print) -> Path:
    """``mvn package`` of infra/keycloak/provider (unit tests included): the listener's jar."""
    mvn = _need("mvn", "to build the Keycloak event listener (apt-get install maven)")
    say("building the Sessionwarden event listener for Keycloak with Maven")
    run = subprocess.run([mvn, "-q", "-B", "package"], cwd=PROVIDER_DIR)
    if run.returncode != 0:
        raise KeycloakError("Maven could not build the event listener (output above)")
    return PROVIDER_DIR / "target" / PROVIDER_JAR


def built_copy(say: Any = print) -> Path:
    """The cached Keycloak, unpacked, with the listener in providers/, built (``kc.sh build``)."""
    built = cache_dir() / f"built-{build_key()}"
    if (built / ".complete").exists():
        return built
    zipped = fetch(say)
    _need("java", "to run Keycloak (Java 17+: apt-get install openjdk-17-jre-headless)")
    with _locked("build"):
        if (built / ".complete").exists():
            return built
        jar = build_provider(say)
        partial = built.with_name(built.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(zipped) as archive:
            archive.extractall(partial)
        (top,) = list(partial.iterdir())
        home = partial / "kc"
        top.rename(home)
        for script in (home / "bin").glob("*.sh"):
            script.chmod(0o755)
        shutil.copy2(jar, home / "providers" / PROVIDER_JAR)
        say(f"building Keycloak {keycloak_version()} ({' '.join(BUILD_OPTIONS)}) in {built}")
        started = time.monotonic()
        run = subprocess.run(
            [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise KeycloakError(f"kc.sh build failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        say(f"built in {time.monotonic() - started:.1f}s")
        shutil.rmtree(home / "data", ignore_errors=True)
        shutil.rmtree(built, ignore_errors=True)
        partial.rename(built)
        (built / ".complete").touch()
        _prune(keep=built)
    return built


def _prune(keep: Path, copies: int = 3) -> None:
    """Leave the ``copies`` newest built copies (other checkouts' providers may differ). A server
    running from a removed copy is unaffected: it runs from hard links of its own."""
    built = sorted(
        (p for p in keep.parent.glob("built-*") if p != keep and (p / ".complete").exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in built[copies - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def _link_copy(src: Path, dst: Path) -> None:
    """A hard-linked copy (instant, no space); a plain copy across file systems."""
    try:
        shutil.copytree(src, dst, copy_function=os.link)
    except OSError:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (kc.sh and its JVM), in KiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(p) for p in children]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# --- HTTP -----------------------------------------------------------------------------------


class HttpError(KeycloakError):
    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def _request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any, dict[str, str]]:
    data = None
    hdrs = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
            got = dict(resp.headers.items())
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = err.code
        got = dict(err.headers.items())
    text = raw.decode(errors="replace")
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text
    return status, body, got


class KeycloakAdmin:
    """The admin REST API as the bootstrap administrator (password grant on ``admin-cli``)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self._username = username
        self._password = password
        self._token = ""
        self._expires = 0.0

    def _bearer(self) -> str:
        if time.monotonic() > self._expires:
            status, body, _ = _request(
                "POST",
                f"{self.base_url}/realms/master/protocol/openid-connect/token",
                form={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": self._username,
                    "password": self._password,
                },
            )
            if status != 200:
                raise HttpError(status, str(body), "admin token")
            self._token = body["access_token"]
            self._expires = time.monotonic() + float(body.get("expires_in", 60)) - 10
        return self._token

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: tuple[int, ...] = (),
        timeout: float = 30,
    ) -> Any:
        """``path`` under /admin/realms; raises HttpError unless 2xx (or a status in ``ok``)."""
        status, got, headers = _request(
            method,
            f"{self.base_url}/admin/realms{path}",
            json_body=body,
            headers={"Authorization": f"Bearer {self._bearer()}"},
            timeout=timeout,
        )
        if not (200 <= status < 300 or status in ok):
            raise HttpError(status, str(got), f"{method} {path}")
        if status == 201 and "Location" in headers:
            return headers["Location"].rsplit("/", 1)[-1]
        return got

    # The calls the tests make most.
    def user_id(self, realm: str, username: str) -> str:
        found = self.call("GET", f"/{realm}/users?exact=true&username={username}")
        return str(found[0]["id"])

    def realm_roles(self, realm: str, *names: str) -> list[dict[str, Any]]:
        return [self.call("GET", f"/{realm}/roles/{name}") for name in names]

    def grant_realm_roles(self, realm: str, user_id: str, *names: str) -> None:
        self.call(
            "POST", f"/{realm}/users/{user_id}/role-mappings/realm", self.realm_roles(realm, *names)
        )

    def remove_realm_roles(self, realm: str, user_id: str, *names: str) -> None:
        self.call(
            "DELETE",
            f"/{realm}/users/{user_id}/role-mappings/realm",
            self.realm_roles(realm, *names),
        )

    def update_user(self, realm: str, user_id: str, **fields: Any) -> None:
        """Change fields of the user's representation (``enabled``, ``attributes``...)."""
        user = self.call("GET", f"/{realm}/users/{user_id}")
        user.update(fields)
        self.call("PUT", f"/{realm}/users/{user_id}", user)

    def set_enabled(self, realm: str, user_id: str, enabled: bool) -> None:
        self.update_user(realm, user_id, enabled=enabled)

    def user_sessions(self, realm: str, user_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/{realm}/users/{user_id}/sessions"))

    def delete_session(self, realm: str, session_id: str) -> None:
        self.call("DELETE", f"/{realm}/sessions/{session_id}")


class Tokens:
    """The OpenID Connect endpoints a relying party uses: direct grant, refresh, introspection,
    logout. Each returns (HTTP status, JSON body)."""

    def __init__(self, base_url: str, realm: str) -> None:
        self.endpoint = f"{base_url}/realms/{realm}/protocol/openid-connect"

    @staticmethod
    def _client(form: dict[str, str], client_id: str, secret: str | None) -> dict[str, str]:
        form["client_id"] = client_id
        if secret is not None:
            form["client_secret"] = secret
        return form

    def password(
        self, client_id: str, username: str, password: str, secret: str | None = None
    ) -> tuple[int, Any]:
        form = {"grant_type": "password", "username": username, "password": password}
        form["scope"] = "openid"
        status, body, _ = _request(
            "POST", f"{self.endpoint}/token", form=self._client(form, client_id, secret)
        )
        return status, body

    def refresh(
        self, client_id: str, refresh_token: str, secret: str | None = None
    ) -> tuple[int, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        status, body, _ = _request(
            "POST", f"{self.endpoint}/token", form=self._client(form, client_id, secret)
        )
        return status, body

    def introspect(self, client_id: str, secret: str, token: str) -> tuple[int, Any]:
        auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        status, body, _ = _request(
            "POST",
            f"{self.endpoint}/token/introspect",
            form={"token": token},
            headers={"Authorization": f"Basic {auth}"},
        )
        return status, body

    def logout(
        self, client_id: str, refresh_token: str, secret: str | None = None
    ) -> tuple[int, Any]:
        form = {"refresh_token": refresh_token}
        status, body, _ = _request(
            "POST", f"{self.endpoint}/logout", form=self._client(form, client_id, secret)
        )
        return status, body


def session_id_of(token: str) -> str:
    """The ``sid`` claim (Keycloak's user session id) of a JWT, read without verifying it."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sid"])


# --- provisioning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Realm:
    """What ``provision`` made: names, secrets and ids the tests use."""

    name: str
    password: str  # every user's
    users: dict[str, str]  # username -> id
    rp_client: str  # confidential, standard flow, back-channel logout
    rp_secret: str
    test_client: str  # public, direct grant
    revoker_client: str  # service account allowed to end sessions
    revoker_secret: str
    roles: tuple[str, ...]


def provision(
    admin: KeycloakAdmin,
    realm: str,
    *,
    users: dict[str, tuple[str, ...]] | None = None,
    roles: tuple[str, ...] = ("viewer", "editor", "admin"),
    backchannel_logout_url: str | None = None,
    redirect_uri: str = "http://127.0.0.1/*",
    listener: bool = True,
) -> Realm:
    """A realm with realm roles, users holding them, and three clients: ``rp`` (confidential, the
    relying party, with a back-channel logout URL when given), ``tests`` (public, direct grant)
    and ``revoker`` (a service account holding only realm-management's ``manage-users``, the least
    role that can delete user sessions). With ``listener`` the realm's events go to the
    ``sessionwarden`` listener, admin events with their representation."""
    users = users if users is not None else {"alice": ("viewer", "editor"), "bob": ("viewer",)}
    password = "pw-" + os.urandom(6).hex()
    rp_secret = "rp-" + os.urandom(12).hex()
    revoker_secret = "rv-" + os.urandom(12).hex()
    admin.call(
        "POST",
        "",
        {
            "realm": realm,
            "enabled": True,
            "eventsListeners": ["jboss-logging", LISTENER] if listener else ["jboss-logging"],
            "adminEventsEnabled": listener,
            "adminEventsDetailsEnabled": listener,
        },
        timeout=120,  # a realm's creation writes its default clients, roles and flows
    )
    profile = admin.call("GET", f"/{realm}/users/profile")
    profile["unmanagedAttributePolicy"] = "ENABLED"
    admin.call("PUT", f"/{realm}/users/profile", profile)
    for role in roles:
        admin.call("POST", f"/{realm}/roles", {"name": role})
    rp = {
        "clientId": "rp",
        "secret": rp_secret,
        "publicClient": False,
        "standardFlowEnabled": True,
        "directAccessGrantsEnabled": True,
        "redirectUris": [redirect_uri],
        "frontchannelLogout": False,
        "attributes": {
            "backchannel.logout.session.required": "true",
            "backchannel.logout.revoke.offline.tokens": "false",
            **(
                {"backchannel.logout.url": backchannel_logout_url} if backchannel_logout_url else {}
            ),
        },
    }
    rp_id = admin.call("POST", f"/{realm}/clients", rp)
    # Introspection by rp reports a token active only when rp is in its audience.
    admin.call(
        "POST",
        f"/{realm}/clients/{rp_id}/protocol-mappers/models",
        {
            "name": "rp-audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {
                "included.client.audience": "rp",
                "access.token.claim": "true",
                "introspection.token.claim": "true",
            },
        },
    )
    tests_id = admin.call(
        "POST",
        f"/{realm}/clients",
        {
            "clientId": "tests",
            "publicClient": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": True,
        },
    )
    admin.call(
        "POST",
        f"/{realm}/clients/{tests_id}/protocol-mappers/models",
        {
            "name": "rp-audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {
                "included.client.audience": "rp",
                "access.token.claim": "true",
                "introspection.token.claim": "true",
            },
        },
    )
    revoker_id = admin.call(
        "POST",
        f"/{realm}/clients",
        {
            "clientId": "revoker",
            "secret": revoker_secret,
            "publicClient": False,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": True,
        },
    )
    account = admin.call("GET", f"/{realm}/clients/{revoker_id}/service-account-user")
    management = admin.call("GET", f"/{realm}/clients?clientId=realm-management")[0]
    manage_users = admin.call("GET", f"/{realm}/clients/{management['id']}/roles/manage-users")
    admin.call(
        "POST",
        f"/{realm}/users/{account['id']}/role-mappings/clients/{management['id']}",
        [manage_users],
    )
    ids: dict[str, str] = {}
    for username, granted in users.items():
        uid = admin.call(
            "POST",
            f"/{realm}/users",
            {
                "username": username,
                "enabled": True,
                "email": f"{username}@example.test",
                "emailVerified": True,
                "firstName": username.title(),
                "lastName": "Test",
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
        )
        ids[username] = uid
        if granted:
            admin.grant_realm_roles(realm, uid, *granted)
    return Realm(
        name=realm,
        password=password,
        users=ids,
        rp_client="rp",
        rp_secret=rp_secret,
        test_client="tests",
        revoker_client="revoker",
        revoker_secret=revoker_secret,
        roles=roles,
    )


# --- the server -----------------------------------------------------------------------------


@dataclass
class KeycloakServer:
    """One Keycloak from the built copy: 127.0.0.1, free ports, a data folder of its own. The
    event listener publishes to ``bootstrap_servers``/``topic`` when they are given (SPI options
    in ``listener_options`` are added as ``--spi-events-listener--sessionwarden--<name>``)."""

    workdir: Path | None = None
    bootstrap_servers: str | None = None
    topic: str = "auth.events"
    listener_options: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = float(os.environ.get("KEYCLOAK_READY_TIMEOUT", "240"))
    admin_password: str = field(default_factory=lambda: "kc-" + os.urandom(12).hex())
    port: int = 0
    management_port: int = 0
    startup_s: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "keycloak.log"

    def admin(self) -> KeycloakAdmin:
        return KeycloakAdmin(self.base_url, ADMIN_USER, self.admin_password)

    def tokens(self, realm: str) -> Tokens:
        return Tokens(self.base_url, realm)

    def args(self, home: Path) -> list[str]:
        spi = {**self.listener_options}
        if self.bootstrap_servers:
            spi.setdefault("bootstrap-servers", self.bootstrap_servers)
            spi.setdefault("topic", self.topic)
        return [
            str(home / "bin" / "kc.sh"),
            "start",
            "--optimized",
            "--http-enabled=true",
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            f"--http-management-port={self.management_port}",
            "--hostname-strict=false",
            f"--db-url=jdbc:h2:file:{home / 'data' / 'h2' / 'keycloakdb'};NON_KEYWORDS=VALUE",
            "--log-console-output=default",
            *(f"--spi-events-listener--{LISTENER}--{k}={v}" for k, v in spi.items()),
        ]

    def start(self, built: Path | None = None) -> KeycloakServer:
        built = built or built_copy()
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sw-keycloak-")
            self.workdir = Path(self._tmp.name)
        home = self.workdir / "kc"
        _link_copy(built / "kc", home)
        self.port = self.port or free_port()
        self.management_port = self.management_port or free_port()
        env = {
            **os.environ,
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx768m",
        }
        started = time.monotonic()
        with open(self.log, "ab") as out:
            self._proc = subprocess.Popen(
                self.args(home),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._wait_ready(started)
        self.startup_s = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        url = f"http://127.0.0.1:{self.management_port}/health/ready"
        while time.monotonic() < started + self.ready_timeout:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise KeycloakError(f"Keycloak exited during start-up:\n{self.tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise KeycloakError(
            f"Keycloak was not ready within {self.ready_timeout:g}s:\n{self.tail()}"
        )

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_mib(self) -> float:
        return _rss_kib(self._proc.pid) / 1024 if self._proc else 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def detach(self) -> None:
        """Leave the server running past this object (``infra/keycloak/keycloak.py up``)."""
        self._proc = None
        self._tmp = None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def __enter__(self) -> KeycloakServer:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
