"""Training objectives: separation losses (HFRA/Sound-of-Pixels), CLAP alignment, the LAVSS binaural loss."""
