"""One settings object for the room service: defaults < ``<room>/room.yaml`` < environment < CLI.

Secrets are never settings: keys live in the room's key files (optionally
passphrase-protected, the passphrase from ``CLEANROOM_KEY_PASSPHRASE``), so no
secret can end up in a settings dump, a log line or ``--help``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cleanroom.contract.documents import format_validation_error, read_yaml
from cleanroom.errors import T_, SpecError

SETTINGS_FILE = "room.yaml"


class Settings(BaseSettings):
    """Everything an operator may tune. Every field is documented in the README."""

    model_config = SettingsConfigDict(env_prefix="CLEANROOM_", extra="forbid", frozen=True)

    room: Path = Field(description="The room directory (made by `cleanroom room init`).")
    host: str = Field("127.0.0.1", description="Address the service listens on.")
    port: int = Field(8470, ge=1, le=65535, description="Port the service listens on.")
    max_upload_bytes: int = Field(
        16 * 1024**3, gt=0, description="Largest bundle accepted by an upload, in bytes."
    )
    max_request_bytes: int = Field(
        16 * 1024**2,
        gt=0,
        description="Largest body of any other request (JSON, forms), in bytes, refused with "
        "413 before it is read; the largest legitimate one is a proposed policy.",
    )
    threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="DuckDB worker threads."
    )
    memory_limit: str = Field("16GB", description="DuckDB memory limit (e.g. '16GB').")
    backend: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="Engine computing queries' exact bounded aggregates: the embedded DuckDB "
        "warehouse, or Apache Spark over encrypted Parquet (needs the spark extra and Java 17).",
    )
    spark_master: str = Field(
        "local[*]",
        description="Spark master when backend is spark: local[N], spark://host:7077, yarn, "
        "k8s://….",
    )
    spark_data: Path | None = Field(
        None,
        description="Directory of the encrypted Parquet Spark reads (analysis tables; party "
        "tables only while a match runs; default <room>/spark); on a cluster, mounted at the "
        "same path on the room and every worker.",
    )
    log_format: Literal["json", "text"] = Field("json", description="Service log format.")
    environment: Literal["production", "development"] = Field(
        "production",
        description="'production' refuses unsafe set-ups (e.g. key files readable by others).",
    )
    timezone: str = Field(
        "Asia/Tehran",
        description="The room's time zone (an IANA name, e.g. 'Asia/Tehran', 'UTC'): report "
        "schedules run in it, and Solar Hijri budget periods start at its midnight.",
    )
    scheduler: bool = Field(
        True,
        description="Run the policy's scheduled reports, and delete data past the policy's "
        "retention, inside the service.",
    )
    scheduler_interval: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds between the scheduler's checks for due reports "
        "and for data past its retention.",
    )
    backup_key: Path | None = Field(
        None,
        description="The operator's backup public key (`cleanroom keys backup`) that "
        "`cleanroom room backup` seals archives to; its private key is kept off the room. "
        "Unset: the room writes no backup.",
    )
    audit_verify_interval: float = Field(
        600.0,
        ge=0,
        le=86400,
        description="Seconds between the service's full re-verifications of the audit chain "
        "(0: only at start-up and on request); appends check only new entries.",
    )
    web_secure_cookies: bool = Field(
        True,
        description="Send the web UI's cookies over HTTPS only (Secure). 'false' is for a "
        "browser on plain http://127.0.0.1 in development and tests; production refuses it.",
    )
    store_busy_timeout: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Seconds a metadata write waits for another process's lock on the store "
        "before the request fails with 503 store_busy (and changes nothing).",
    )
    language: Literal["fa", "en"] = Field(
        "en",
        description="The room's default language for the web UI (each user may switch; the "
        "choice is remembered) and for reports: 'fa' (Persian, right-to-left, Solar Hijri "
        "dates, Persian digits) or 'en'.",
    )
    fault_pause: str | None = Field(
        None,
        pattern=r"^[a-z_]+\.[a-z_]+(#[1-9][0-9]?)?$",
        description="Development only, for crash tests: pause at the named fault point "
        "('query.release', 'policy.activate', 'report.section'; '#N': its N-th passage) so a "
        "test can kill the process there (cleanroom.room.faults). Production refuses it.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """A zone the tz database knows (tzdata ships it), so schedules never guess."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"'{value[:60]}' is not a time zone name (e.g. 'Asia/Tehran', 'UTC')"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The room's time zone."""
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _secure_cookies_outside_development(self) -> Settings:
        """Fail closed: a session cookie sent over plain HTTP can be stolen on the wire."""
        if not self.web_secure_cookies and self.environment != "development":
            raise ValueError("web_secure_cookies may be false only with environment: development")
        return self

    @model_validator(mode="after")
    def _fault_pause_only_in_development(self) -> Settings:
        """Fail closed: a production service never stops on purpose."""
        if self.fault_pause is not None and self.environment != "development":
            raise ValueError("fault_pause may be set only with environment: development")
        return self


def load_settings(room: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings for one room; errors name the file or variable and the field."""
    room = Path(room or os.environ.get("CLEANROOM_ROOM", "."))
    path = room / SETTINGS_FILE
    values: dict[str, Any] = {}
    if path.exists():
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise SpecError(T_("%(path)s: expected a mapping of setting: value", path=path))
        values = loaded

    class FileSource(PydanticBaseSettingsSource):
        def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
            return values.get(field_name), field_name, False

        def __call__(self) -> dict[str, Any]:
            return dict(values)

    class RoomSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # CLI arguments win over the environment, which wins over the room's file.
            return (init_settings, env_settings, FileSource(settings_cls))

    try:
        return RoomSettings(room=room, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        raise SpecError(format_validation_error(f"settings ({path} / CLEANROOM_*)", err)) from None
