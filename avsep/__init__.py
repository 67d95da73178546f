"""avsep: a reproducible pipeline for audio-visual sound separation research.

The package holds all logic; the Snakemake rules and DVC stages only wire it together.
"""

__version__ = "0.1.0"
