"""Training: one engine for every model (seeded, resumable, distributed), checkpoints."""
