"""One settings object for the room service: defaults < ``<room>/room.yaml`` < environment < CLI.

Secrets are never settings: keys live in the room's key files (optionally
passphrase-protected, the passphrase from ``CLEANROOM_KEY_PASSPHRASE``), so no
secret can end up in a settings dump, a log line or ``--help``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cleanroom.errors import SpecError
from cleanroom.spec import format_validation_error, read_yaml

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
    threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="DuckDB worker threads."
    )
    memory_limit: str = Field("16GB", description="DuckDB memory limit (e.g. '16GB').")
    log_format: Literal["json", "text"] = Field("json", description="Service log format.")
    environment: Literal["production", "development"] = Field(
        "production",
        description="'production' refuses unsafe set-ups (e.g. key files readable by others).",
    )
    scheduler: bool = Field(
        True, description="Run the policy's scheduled reports inside the service."
    )
    scheduler_interval: float = Field(
        30.0, gt=0, le=3600, description="Seconds between the scheduler's checks for due reports."
    )


def load_settings(room: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings for one room; errors name the file or variable and the field."""
    room = Path(room or os.environ.get("CLEANROOM_ROOM", "."))
    path = room / SETTINGS_FILE
    values: dict[str, Any] = {}
    if path.exists():
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise SpecError(f"{path}: expected a mapping of setting: value")
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
