"""Runtime settings: read once at the entry point into one frozen object.

Sources, highest priority first: environment variables (``SESSIONWARDEN_*``, plus the
conventional ``KAFKA_BOOTSTRAP_SERVERS``), then an optional TOML config file, then defaults.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.errors import ConfigError

if TYPE_CHECKING:
    from streams.caep import CaepConfig


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
    instance_id: str = Field(default="0", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    # Records per transaction at most: each commit costs two broker round trips, so larger
    # batches raise throughput (1000 -> 5000: 1.4x) at the price of a longer batch.
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=0.05, gt=0, le=5)
    transaction_timeout_ms: int = Field(default=10_000, ge=1000, le=900_000)
    session_timeout_ms: int = Field(default=6_000, ge=1000, le=300_000)
    # Static group membership: a restarted instance takes its partitions back at once; the
    # price is that a stopped instance's partitions move only after session_timeout_ms.
    static_membership: bool = True
    # Fire a deadline only once the input is known to be read past deadline + grace.
    lag_grace_s: float = Field(default=2.0, ge=0, le=3600)
    # Salt for hashing session ids in log lines; empty means a random salt per process.
    log_salt: str = Field(default="", max_length=256)
    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    # --- CAEP / Shared Signals (optional) ----------------------------------------------
    # Also publish revocations, revalidations, session starts and alerts as OpenID CAEP 1.0
    # Security Event Tokens on `sessionwarden.caep`. Unsigned (alg "none") unless a PEM key
    # (RSA for RS256, EC P-256 for ES256) is given.
    caep_enabled: bool = False
    caep_issuer: str = Field(default="", max_length=512)
    caep_audiences: str = Field(default="", max_length=4096, description="comma separated")
    caep_signing_key_file: Path | None = None
    caep_key_id: str | None = Field(default=None, max_length=256)

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

    # --- Metrics and health (/metrics, /healthz, /readyz) -----------------------------------
    # Every long-running process serves them on its own port; 0 picks a free port (logged as
    # "metrics serving"). A non-loopback host needs a bearer token (Authorization header).
    metrics_enabled: bool = True
    metrics_host: str = Field(default="127.0.0.1", max_length=255)
    metrics_token: str = Field(default="", max_length=256)
    enforcer_metrics_port: int = Field(default=9464, ge=0, le=65535)
    detect_metrics_port: int = Field(default=9465, ge=0, le=65535)
    # /healthz fails when the loop made no progress for this long (a restore may take longer).
    health_stall_s: float = Field(default=30.0, gt=0, le=3600)
    health_restore_budget_s: float = Field(default=600.0, gt=0, le=86400)
    # /readyz: every owned partition restored and at most this many records behind.
    ready_max_lag_records: int = Field(default=10_000, ge=0)
    # --- end of the metrics settings ---------------------------------------------------------

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.policy_file is not None and not self.policy_file.is_file():
            raise ValueError(f"policy_file: no such file: {self.policy_file}")
        loopback = self.metrics_host in ("localhost", "::1") or self.metrics_host.startswith("127.")
        if not loopback and not self.metrics_token:
            raise ValueError("metrics_host: a non-loopback address needs metrics_token")
        return self

    def caep_config(self) -> CaepConfig | None:
        """The CAEP transmitter settings, or None when CAEP is off. Reads and checks the key."""
        if not self.caep_enabled:
            return None
        from streams.caep import CaepConfig

        key = None
        if self.caep_signing_key_file is not None:
            try:
                key = self.caep_signing_key_file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"caep_signing_key_file: {exc.strerror}") from exc
        audiences = tuple(a.strip() for a in self.caep_audiences.split(",") if a.strip())
        return CaepConfig(self.caep_issuer, audiences, key, self.caep_key_id)

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
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from exc
