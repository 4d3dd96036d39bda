"""Live mode: enhance an input device in real time (no Qt here).

:mod:`.ring` holds the preallocated sample rings the PortAudio callback copies through, :mod:`.chain`
one model's streaming path between the device rate and the model's rate (with its admission checks),
:mod:`.engine` the stream, the processing thread, the dry/wet mixer and the latency and overload
accounting, :mod:`.take` the recordings a take becomes, :mod:`.scope` the scrolling spectrogram feed.
"""
