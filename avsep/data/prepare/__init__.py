"""Preparing datasets: synthetic rendering, metadata, downloads, FAIR-Play import and extraction of audio and frames."""
