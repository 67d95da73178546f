"""Signal processing: the STFT front-end and log-frequency warp, mixing, binaural features, acoustic properties."""
