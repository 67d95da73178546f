"""The one validated configuration: params.yaml (and --config/--configfile values) into typed dataclasses."""
