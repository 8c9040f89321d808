"""Experiment configs: config files, command-line overrides, validation, and stored configs brought up to date.

    files.py      "configs/x.py[:variant]" → a locked ConfigDict; the default layout; workdir names
    overrides.py  --config / --config.<field>=… flags; a bad one is one line and exit status 2
    validate.py   validate_config: ranges and cross-field rules, names from the registries
    upgrade.py    a config from an older checkpoint → today's layout
"""
from jaxdiff.config.files import (
    DEFAULT_CONFIG_FILE,
    config_name_and_variant,
    default_config,
    default_workdir,
    degradation_params,
    load_config_file,
)
from jaxdiff.config.overrides import describe_unknown_override, parse_flags
from jaxdiff.config.upgrade import upgrade_stored_config
from jaxdiff.config.validate import FIELDS, FREE_FORM, OPTIONAL_FIELDS, ConfigError, Problem, validate_config

__all__ = [
    "DEFAULT_CONFIG_FILE", "config_name_and_variant", "default_config", "default_workdir", "degradation_params",
    "load_config_file", "describe_unknown_override", "parse_flags", "upgrade_stored_config", "FIELDS", "FREE_FORM",
    "OPTIONAL_FIELDS", "ConfigError", "Problem", "validate_config",
]
