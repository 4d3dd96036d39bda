"""What the panes draw: the STFT, the registry of views, screen tiles and the exported figure."""
