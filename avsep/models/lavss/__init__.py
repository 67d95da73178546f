"""LAVSS: the location-guided binaural separator and its blocks."""
