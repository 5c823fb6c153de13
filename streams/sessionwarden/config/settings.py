"""Runtime settings: read once at the entry point into one frozen object.

Sources, highest priority first: environment variables (``SESSIONWARDEN_*``, plus the
conventional ``KAFKA_BOOTSTRAP_SERVERS``), then an optional TOML config file, then defaults.
"""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, PrivateAttr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sessionwarden.contracts.validation import error_lines
from sessionwarden.errors import ConfigError

if TYPE_CHECKING:
    from sessionwarden.caep.events import CaepConfig
    from sessionwarden.kafka.security import KafkaSecurity


def host_instance_id(hostname: str | None = None) -> str:
    """The host's name (the pod name on Kubernetes) made into a valid instance id."""
    name = socket.gethostname() if hostname is None else hostname
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:64]
    return cleaned or "0"


class TopicNames:
    """Every topic name the product uses, with an optional common prefix (tests use one each)."""

    __slots__ = ("alerts", "audit", "caep", "dlq", "enforcer_state", "input", "revocations")

    def __init__(self, prefix: str = "") -> None:
        self.input = f"{prefix}auth.events"
        self.revocations = f"{prefix}sessionwarden.revocations"
        self.audit = f"{prefix}sessionwarden.audit"
        self.alerts = f"{prefix}sessionwarden.alerts"
        self.dlq = f"{prefix}sessionwarden.dlq"
        self.caep = f"{prefix}sessionwarden.caep"
        self.enforcer_state = f"{prefix}sessionwarden.enforcer-state"


class Settings(BaseSettings):
    """Everything a Sessionwarden process needs to run; validated once, then frozen."""

    model_config = SettingsConfigDict(env_prefix="SESSIONWARDEN_", frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "SESSIONWARDEN_BOOTSTRAP_SERVERS", "bootstrap_servers"
        ),
        min_length=1,
    )
    topic_prefix: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9._-]*$")
    partitions: int = Field(default=6, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)
    policy_file: Path | None = None

    # The enforcer
    group_id: str = Field(default="sessionwarden-enforcer", min_length=1)
    # Defaults from the host identity (the pod name on Kubernetes), so replicas deployed
    # without one never share a transactional id and fence each other in turn.
    instance_id: str = Field(
        default_factory=lambda: host_instance_id(),
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
    )
    # Records per transaction at most: each commit costs two broker round trips, so larger
    # batches raise throughput (1000 -> 5000: 1.4x) at the price of a longer batch.
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=0.05, gt=0, le=5)
    transaction_timeout_ms: int = Field(default=10_000, ge=1000, le=900_000)
    session_timeout_ms: int = Field(default=6_000, ge=1000, le=300_000)
    # Static group membership: a crashed instance that restarts takes its partitions back at
    # once; the price is that a crashed one's partitions move only after session_timeout_ms (a
    # planned stop leaves the group and hands them over at once).
    static_membership: bool = True
    # Fire a deadline only once the input is known to be read past deadline + grace.
    lag_grace_s: float = Field(default=2.0, ge=0, le=3600)
    # Salt for hashing session ids in log lines; empty means a random salt per process.
    log_salt: str = Field(default="", max_length=256)
    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    # --- CAEP / Shared Signals (optional) ----------------------------------------------
    # Also publish revocations, revalidations, session starts and alerts as OpenID CAEP 1.0
    # Security Event Tokens on `sessionwarden.caep`, signed with a PEM key (RSA for RS256, EC
    # P-256 for ES256). Unsigned tokens (alg "none") only with caep_allow_unsigned, which is
    # for development: anyone who can write the topic can forge an unsigned token.
    caep_enabled: bool = False
    caep_issuer: str = Field(default="", max_length=512)
    caep_audiences: str = Field(default="", max_length=4096, description="comma separated")
    caep_signing_key_file: Path | None = None
    caep_key_id: str | None = Field(default=None, max_length=256)
    caep_allow_unsigned: bool = False  # development only; the enforcer warns at start
    # Session subjects are the keyed hash of the session id (log_salt, as in the log lines),
    # never the live id itself; audiences listed here (comma separated, each one of
    # caep_audiences) receive the raw session id instead. The enforcer warns at start.
    caep_raw_session_audiences: str = Field(default="", max_length=4096)
    # The detectors' risk-level-change tokens (from alerts), under an issuer and a key of
    # their own: the detectors never read caep_signing_key_file, so a compromised detector
    # cannot sign the session events receivers trust the enforcer's issuer for. Off unless
    # detect_caep_issuer is set; then the key is required (unless caep_allow_unsigned).
    detect_caep_issuer: str = Field(default="", max_length=512)
    detect_caep_signing_key_file: Path | None = None
    detect_caep_key_id: str | None = Field(default=None, max_length=256)

    # --- The anomaly detectors (`sessionwarden detect`) -----------------------------------
    # Consumer group and faust app id; faust's changelog topics are named after it (with the
    # topic prefix in front), e.g. `sessionwarden-detect-expirations-changelog`.
    detect_group_id: str = Field(
        default="sessionwarden-detect", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$"
    )
    # The worker's web server (faust's /router, /stats ...); off unless asked for, and then
    # bound to a loopback address only. The /table views are never served.
    detect_web_enabled: bool = False
    detect_web_host: str = Field(
        default="127.0.0.1", pattern=r"^(127(\.\d{1,3}){3}|localhost|::1)$"
    )
    detect_web_port: int = Field(default=6066, ge=1, le=65535)
    # faust's working directory; empty means a temporary one (the tables live in memory and
    # are restored from their changelogs, so nothing on disk must survive).
    detect_data_dir: Path | None = None
    # How often the detect worker commits its input offsets.
    detect_commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    # --- end of the anomaly detectors' settings --------------------------------------------

    # --- Producer delay (the enforcer's firing horizon) ------------------------------------
    # How late an auth event may be appended after it was made (publisher linger + retries)
    # and still count: a deadline d fires only once its partition is known read through
    # broker time d + budget. Raise it to your producers' worst publish delay; every second
    # of budget adds a second to every deadline revocation. Activity appended later than
    # that is audited as `activity_after_revocation`.
    producer_delay_budget_s: float = Field(default=0.0, ge=0, le=3600)
    # --- end of the producer delay settings -------------------------------------------------

    # --- The enforcer's transactions and topics ------------------------------------------
    # How long one transactional call (send offsets, commit, abort) retries retriable errors
    # before the batch's outcome counts as unknown and the clients are rebuilt.
    txn_retry_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Client rebuilds in a row (no committed batch in between) before the enforcer exits
    # non-zero for its supervisor.
    max_recoveries: int = Field(default=5, ge=0, le=1000)
    # min.insync.replicas of every topic; None means min(2, replication_factor).
    min_insync_replicas: int | None = Field(default=None, ge=1, le=16)
    # --- end of the enforcer's transactions and topics -----------------------------------

    # --- Kafka security (TLS, SASL); docs/SECURITY.md -------------------------------------
    # Every client of every process uses these. Secrets are read from files, once, when the
    # settings are loaded; they never appear in repr, logs or error messages.
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", pattern=r"^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    kafka_sasl_mechanism: str = Field(
        default="SCRAM-SHA-512", pattern=r"^(SCRAM-SHA-256|SCRAM-SHA-512|PLAIN)$"
    )
    kafka_sasl_username: str = Field(default="", max_length=256)
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_file: Path | None = None  # PEM; empty means the system trust store
    kafka_ssl_cert_file: Path | None = None  # PEM client certificate (mutual TLS)
    kafka_ssl_key_file: Path | None = None  # PEM private key of the client certificate
    kafka_ssl_key_password_file: Path | None = None
    kafka_ssl_verify_hostname: bool = True
    # SASL PLAIN sends the password as is: refused without TLS unless this is true (then
    # every process logs an INSECURE KAFKA CONNECTION warning at start).
    kafka_allow_sasl_plain_without_tls: bool = False
    _kafka_security: KafkaSecurity | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_kafka_security(self) -> Settings:
        from sessionwarden.kafka.security import KafkaSecurity

        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password_file):
            raise ValueError(
                f"kafka_security_protocol {protocol} needs kafka_sasl_username and "
                "kafka_sasl_password_file"
            )
        if not tls:
            for name in (
                "kafka_ssl_ca_file",
                "kafka_ssl_cert_file",
                "kafka_ssl_key_file",
                "kafka_ssl_key_password_file",
            ):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} is set but {protocol} uses no TLS (use SSL or SASL_SSL)"
                    )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("kafka_ssl_cert_file and kafka_ssl_key_file go together")
        for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file"):
            path = getattr(self, name)
            if tls and path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        self._kafka_security = KafkaSecurity(
            protocol=protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=_read_secret("kafka_sasl_password_file", self.kafka_sasl_password_file)
            if sasl
            else None,
            ca_file=self.kafka_ssl_ca_file if tls else None,
            cert_file=self.kafka_ssl_cert_file if tls else None,
            key_file=self.kafka_ssl_key_file if tls else None,
            key_password=_read_secret(
                "kafka_ssl_key_password_file", self.kafka_ssl_key_password_file
            )
            if tls
            else None,
            verify_hostname=self.kafka_ssl_verify_hostname,
            allow_plain_without_tls=self.kafka_allow_sasl_plain_without_tls,
        )
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        assert self._kafka_security is not None
        return self._kafka_security

    def kafka_client_config(self) -> dict[str, Any]:
        """``bootstrap.servers`` and the security properties, for any librdkafka client."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka_security.librdkafka()}

    # --- end of the Kafka security settings ------------------------------------------------
    # --- The PostgreSQL revocation sink (`sessionwarden sink postgres`) --------------------
    # libpq connection string or URI of the sink's role (the sessionwarden schema's owner, a
    # member of pg_signal_backend); never logged. Empty: the sink refuses to start.
    pg_dsn: str = Field(default="", max_length=4096, repr=False)
    pg_sink_group_id: str = Field(
        default="sessionwarden-pg-sink", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$"
    )
    # Records per database transaction at most.
    pg_batch_size: int = Field(default=5000, ge=1, le=100_000)
    # How often rows past their keep_until are deleted.
    pg_prune_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    # Cancel / terminate the backends of sessions just revoked (needs pg_signal_backend).
    pg_cut_off: bool = True
    # --- end of the PostgreSQL sink's settings ---------------------------------------------

    # --- The dashboard (`sessionwarden dashboard`) ---------------------------------------
    # Loopback only; behind a token read from a file (a random one is printed when unset).
    dashboard_host: str = Field(default="127.0.0.1", pattern=r"^(127(\.\d{1,3}){3}|localhost|::1)$")
    dashboard_port: int = Field(default=8765, ge=1, le=65535)
    dashboard_token_file: Path | None = None
    # --- end of the dashboard's settings --------------------------------------------------
    # --- Metrics and health (/metrics, /healthz, /readyz) -----------------------------------
    # Every long-running process serves them on its own port; 0 picks a free port (logged as
    # "metrics serving", with the token file). Every request needs the bearer token
    # (Authorization header) from metrics_token_file; when unset, each process makes a random
    # one at start and writes it (0600) to <metrics_token_dir or its working
    # directory>/<service>-<port>.metrics-token.
    metrics_enabled: bool = True
    metrics_host: str = Field(default="127.0.0.1", max_length=255)
    metrics_token_file: Path | None = None
    metrics_token_dir: Path | None = None
    enforcer_metrics_port: int = Field(default=9464, ge=0, le=65535)
    detect_metrics_port: int = Field(default=9465, ge=0, le=65535)
    sink_metrics_port: int = Field(default=9466, ge=0, le=65535)
    dashboard_metrics_port: int = Field(default=9467, ge=0, le=65535)
    # /healthz fails when the loop began no step for this long, or a rebuild of its clients
    # has been retrying for this long (restores run a slice per loop turn: no excuse).
    health_stall_s: float = Field(default=30.0, gt=0, le=3600)
    # /readyz: every owned partition restored and at most this many records behind.
    ready_max_lag_records: int = Field(default=10_000, ge=0)
    # --- end of the metrics settings ---------------------------------------------------------
    # --- Enforcer local state (snapshots of committed changelog state) ---------------------
    # When set, the enforcer keeps one snapshot file per changelog partition in this directory
    # (0700; files 0600) and restores from it plus the changelog's tail instead of reading
    # the changelog from offset 0. Unset: no snapshots, every restore reads the whole
    # changelog. Use a directory of this instance alone (one per instance_id).
    state_dir: Path | None = None
    # A partition's snapshot is rewritten once its state changed and this much time passed,
    # or sooner once this many changelog records were committed since the last one.
    state_snapshot_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    state_snapshot_records: int = Field(default=1_000_000, ge=1)
    # --- end of the enforcer local state settings -------------------------------------------

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.policy_file is not None and not self.policy_file.is_file():
            raise ValueError(f"policy_file: no such file: {self.policy_file}")
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError("min_insync_replicas: larger than replication_factor")
        return self

    def caep_config(self) -> CaepConfig | None:
        """The enforcer's CAEP transmitter settings (session events), or None when CAEP is
        off. Reads and checks the key: only the enforcer calls this."""
        if not self.caep_enabled:
            return None
        from sessionwarden.caep.events import SESSION_RECORD_TYPES, CaepConfig

        if self.caep_signing_key_file is None and not self.caep_allow_unsigned:
            raise ConfigError(
                "caep_enabled needs caep_signing_key_file (SETs are signed); unsigned SETs "
                "only with caep_allow_unsigned=true, for development"
            )
        audiences = self._caep_audiences()
        raw = frozenset(a.strip() for a in self.caep_raw_session_audiences.split(",") if a.strip())
        if not self.log_salt and not set(audiences) <= raw:
            raise ConfigError(
                "caep_enabled needs log_salt: session subjects are its keyed hash of the "
                "session id (a random salt per process would change them at every restart); "
                "or name the audiences that may receive raw ids in caep_raw_session_audiences"
            )
        key = _read_key("caep_signing_key_file", self.caep_signing_key_file)
        return CaepConfig(
            self.caep_issuer,
            audiences,
            key,
            self.caep_key_id,
            SESSION_RECORD_TYPES,
            session_salt=self.log_salt,
            raw_session_audiences=raw,
        )

    def detect_caep_config(self) -> CaepConfig | None:
        """The detectors' CAEP settings (risk-level-change only, their own issuer and key), or
        None when they publish no tokens. Never reads caep_signing_key_file."""
        if not self.caep_enabled:
            return None
        issuer, key_file = self.detect_caep_issuer, self.detect_caep_signing_key_file
        if not issuer:
            if key_file is not None:
                raise ConfigError("detect_caep_signing_key_file needs detect_caep_issuer")
            return None
        from sessionwarden.caep.events import ALERT_RECORD_TYPES, CaepConfig

        if issuer == self.caep_issuer:
            raise ConfigError(
                "detect_caep_issuer: must differ from caep_issuer (receivers trust the "
                "enforcer's issuer for session events, never the detectors')"
            )
        if key_file is None and not self.caep_allow_unsigned:
            raise ConfigError(
                "detect_caep_issuer needs detect_caep_signing_key_file (SETs are signed); "
                "unsigned SETs only with caep_allow_unsigned=true, for development"
            )
        enforcer_key = self.caep_signing_key_file
        if (
            key_file is not None
            and enforcer_key is not None
            and key_file.absolute() == (enforcer_key.absolute())
        ):
            raise ConfigError(
                "detect_caep_signing_key_file: must not be caep_signing_key_file (the "
                "detectors get a key of their own)"
            )
        key = _read_key("detect_caep_signing_key_file", key_file)
        return CaepConfig(
            issuer, self._caep_audiences(), key, self.detect_caep_key_id, ALERT_RECORD_TYPES
        )

    def _caep_audiences(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.caep_audiences.split(",") if a.strip())

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def transactional_id(self) -> str:
        """Stable per instance, so a restarted instance fences and aborts its predecessor."""
        return f"{self.topic_prefix}{self.group_id}-{self.instance_id}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the config file (passed as init values), which beats defaults.
        return (env_settings, init_settings)


def _read_key(name: str, path: Path | None) -> bytes | None:
    """A PEM key file's bytes (None without a path); errors name the setting, never the key."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {exc.strerror}") from exc


def _read_secret(name: str, path: Path | None) -> str | None:
    """The first line of a secret file (trailing newline stripped); errors never quote it."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path} is not UTF-8 text") from None
    secret = text.splitlines()[0] if text else ""
    if not secret:
        raise ValueError(f"{name}: {path} is empty")
    return secret


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once; every problem is reported as one ConfigError naming the fields."""
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            values = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        lines = error_lines(exc, root="settings")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from exc
