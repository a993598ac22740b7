"""The service's configuration: each setting declared once (`sections.py`), read from a YAML
file, `LEADTIME_*` variables, per-service overrides and annotations (`loading.py`), and
described for people and for Helm (`reference.py`)."""

from autoscaler.config.loading import (
    CONFIG_FILE_VARIABLE,
    ENV_PREFIX,
    config_from_mapping,
    config_to_mapping,
    load_config,
    override_variables,
    policy_with_overrides,
)
from autoscaler.config.sections import (
    DRY_RUN,
    LIVE,
    MAX_BODY_BYTES_LIMIT,
    Config,
    ForecastingConfig,
    HpaConfig,
    HttpConfig,
    KnativeConfig,
    LeaderElectionConfig,
    PolicyConfig,
    PrometheusConfig,
    SimulatorConfig,
    register_workloads,
)

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "DRY_RUN",
    "ENV_PREFIX",
    "LIVE",
    "MAX_BODY_BYTES_LIMIT",
    "Config",
    "ForecastingConfig",
    "HpaConfig",
    "HttpConfig",
    "KnativeConfig",
    "LeaderElectionConfig",
    "PolicyConfig",
    "PrometheusConfig",
    "SimulatorConfig",
    "config_from_mapping",
    "config_to_mapping",
    "load_config",
    "override_variables",
    "policy_with_overrides",
    "register_workloads",
]
