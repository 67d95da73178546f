"""Datasets: synthetic rendering, extraction of audio and frames, mixtures."""
