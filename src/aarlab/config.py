"""Process-wide settings, read from the environment (``AARLAB_*``) by pydantic-settings.

Everything that is written to disk (feature caches, built task pools, experiment caches) lives under
``home`` so that a user can move or wipe it in one place, and so tests can point it at a temp dir.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """User-tunable settings; override with ``AARLAB_HOME=/path`` etc."""

    model_config = SettingsConfigDict(env_prefix="AARLAB_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".cache" / "aarlab")
    torch_threads: int = Field(default=0, description="0 = let torch decide")
    blas_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "BLAS threads for probe fits (0 = leave BLAS as it is). Ignored when OMP_NUM_THREADS, "
            "OPENBLAS_NUM_THREADS or MKL_NUM_THREADS is set: an explicit choice wins."
        ),
    )
    default_task: str = "truth-cities"

    @property
    def feature_cache(self) -> Path:
        return self.home / "features"

    @property
    def data_cache(self) -> Path:
        return self.home / "data"

    @property
    def experiment_cache(self) -> Path:
        return self.home / "experiments"

    @property
    def model_cache(self) -> Path:
        return self.home / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
