"""Audio in and out: reading and probing files, recordings and their versions, playback, loudness, export."""
