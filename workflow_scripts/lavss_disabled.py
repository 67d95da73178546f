"""Snakemake script: a LAVSS result was asked for but the config's lavss section cannot run (rule lavss_disabled)."""
from avsep.config.params import ConfigError

raise ConfigError(f"{snakemake.params.reason}: no LAVSS rule can make {snakemake.output[0]}")  # noqa: F821
