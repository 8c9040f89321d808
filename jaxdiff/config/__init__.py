"""Experiment configs: config files, command-line overrides, validation, and stored configs brought up to date.

    files.py      "configs/x.py[:variant]" → a locked ConfigDict; the default layout; workdir names
    overrides.py  --config.<field>=… flags, a wrong field in one line
    validate.py   validate_config: ranges and cross-field rules, names from the registries
    upgrade.py    a config from an older checkpoint → today's layout
"""
from jaxdiff.config.files import (  # noqa: F401
    DEFAULT_CONFIG_FILE,
    config_name_and_variant,
    default_config,
    default_workdir,
    degradation_params,
    load_config_file,
)
from jaxdiff.config.upgrade import upgrade_stored_config  # noqa: F401
from jaxdiff.config.validation import ConfigError, validate_config  # noqa: F401,E402
