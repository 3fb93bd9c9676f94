"""Server settings: where the data directory and database live, and the limits of the scoring protocol.

They are read from ``AARLAB_SERVER_*`` environment variables so ``aarlab serve`` flags, tests and the
durability subprocess all configure the same object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Everything the server needs to start; ``data_dir`` is the only required value."""

    model_config = SettingsConfigDict(env_prefix="AARLAB_SERVER_", extra="ignore")

    data_dir: Path
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir")
    storage_url: str | None = Field(
        default=None, description="fsspec URL of the code store (s3://bucket/prefix); default: data_dir/code"
    )
    storage_options: dict[str, str] = Field(default_factory=dict, description="fsspec options (endpoint_url)")
    ladder_step: float = Field(
        default=0.01, gt=0, le=0.5, description="reported dev scores are rounded to it"
    )
    dev_budget: int = Field(default=200, ge=1, description="dev submissions per agent and task")
    rate_per_minute: int = Field(default=30, ge=1, description="dev submissions per agent per minute")
    result_budget: int = Field(default=100, ge=1, description="results per agent and task")
    result_rate_per_minute: int = Field(default=10, ge=1, description="results per agent per minute")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="NORMAL: durable across process crashes; FULL: also across power loss"
    )
    db_busy_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="SQLite: how long a write waits for another writer's lock; past it the request is "
        "answered 503 with Retry-After (nothing stored)",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_snapshot_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'server.db'}"

    @property
    def code_url(self) -> str:
        return self.storage_url or str(self.data_dir / "code")
