"""What every stage shares: atomic writes and manifests, progress bars, seeding."""
