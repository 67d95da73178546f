"""Data: reading extracted clips, per-source model inputs, mixture lists (prepare/: making the clips)."""
