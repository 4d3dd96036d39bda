"""Audio in and out: reading and probing files, sample formats, playback and loudness."""
