"""All configuration in one place: environment variables (``LIVEROOM_*``) first,
then defaults. The pure cores never read the environment; they get frozen
config values built here."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.config import CoreConfig
from streams.surge import SurgeConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEROOM_", extra="ignore")

    # streams core (event time)
    tick_s: float = 5.0
    grace_s: float = 10.0
    rate_window_s: float = 60.0
    dedup_horizon_s: float = 120.0
    max_future_s: float = 3600.0
    max_event_bytes: int = 65536
    session_ts_margin_s: float = 300.0  # events this far outside a recorded session are refused
    surge_baseline_s: float = 300.0
    surge_warmup_s: float = 60.0
    surge_z_on: float = 3.5
    surge_z_off: float = 1.5
    surge_min_per_tick: int = 5

    def core_config(self) -> CoreConfig:
        return CoreConfig(
            tick_s=self.tick_s,
            grace_s=self.grace_s,
            rate_window_s=self.rate_window_s,
            dedup_horizon_s=self.dedup_horizon_s,
            max_future_s=self.max_future_s,
            max_event_bytes=self.max_event_bytes,
            surge=SurgeConfig(
                baseline_s=self.surge_baseline_s,
                warmup_s=self.surge_warmup_s,
                z_on=self.surge_z_on,
                z_off=self.surge_z_off,
                min_per_tick=self.surge_min_per_tick,
            ),
        )
