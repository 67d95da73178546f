"""The HFRA family: spectrogram U-Net, visual encoders, the mask-based audio-visual separator."""
