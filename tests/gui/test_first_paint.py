"""Playback preparation and the model listing, whose first runs import libraries on a worker, do not compete
with the first painted spectrogram; work queued behind the first paint never waits longer than the limit."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import workbench.gui.first_paint as first_paint
import workbench.gui.transport as transport_module
from workbench.core.audio.playback import PlaybackEngine
from workbench.gui.main_window import MainWindow


@pytest.fixture
def fresh_gate(monkeypatch):
    """The gate as in a process that has not painted yet."""
    monkeypatch.setattr(first_paint, "_holders", set())
    monkeypatch.setattr(first_paint, "_waiting", [])
    monkeypatch.setattr(first_paint, "_state", {"done": False, "timer": None})


def test_first_preparation_starts_after_the_first_painted_spectrogram(qtbot, settings, tmp_path, monkeypatch,
                                                                      fresh_gate):
    monkeypatch.setattr(transport_module, "libraries_loaded", lambda: False)   # a fresh process
    sr = 16000
    t = np.arange(3 * sr) / sr
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    engine = PlaybackEngine(None)
    events: list[str] = []
    real_load = engine.load
    monkeypatch.setattr(engine, "load", lambda *a, **k: (events.append("load"), real_load(*a, **k))[1])
    w = MainWindow(settings=settings, playback_engine=engine)
    qtbot.addWidget(w)
    w.view.tilesPainted.connect(lambda: events.append("painted"))
    w.show()
    assert w.open_files([path])
    qtbot.waitUntil(lambda: "load" in events and not w.transport.is_loading(), timeout=20000)
    assert events.index("painted") < events.index("load")
    assert len(engine.tracks) == 1


def test_model_listing_starts_after_the_first_painted_spectrogram(qtbot, settings, tmp_path, monkeypatch,
                                                                  fresh_gate):
    import threading

    sr = 16000
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr)).astype(np.float32), sr)
    w = MainWindow(settings=settings, playback_engine=PlaybackEngine(None))
    qtbot.addWidget(w)
    events: list[str] = []
    catalogue = w.model_panel.catalogue
    real_entries = catalogue.entries

    def entries(*a, **k):
        if threading.current_thread() is not threading.main_thread():
            events.append("list")
        return real_entries(*a, **k)
    monkeypatch.setattr(catalogue, "entries", entries)
    w.view.tilesPainted.connect(lambda: events.append("painted"))
    w.show()
    assert w.open_files([path])
    qtbot.waitUntil(lambda: "list" in events and w.model_panel.is_listed(), timeout=30000)
    assert "painted" in events and events.index("painted") < events.index("list")


def test_queued_work_runs_at_once_without_a_holder_and_after_the_limit_with_one(qtbot, monkeypatch, fresh_gate):
    ran = []
    first_paint.after_first_paint(lambda: ran.append("free"))
    assert ran == ["free"]                       # nothing is painting: no wait
    monkeypatch.setattr(first_paint, "MAX_WAIT_MS", 50)
    owner = object()
    first_paint.hold(owner)
    first_paint.after_first_paint(lambda: ran.append("held"))
    assert ran == ["free"] and first_paint.waiting()
    qtbot.waitUntil(lambda: "held" in ran, timeout=2000)   # the holder never painted: the limit releases it
    first_paint.hold(owner)                      # only the first paint is waited for
    first_paint.after_first_paint(lambda: ran.append("later"))
    assert ran[-1] == "later"


def test_release_runs_the_queue_in_order(qtbot, fresh_gate):
    ran = []
    a, b = object(), object()
    first_paint.hold(a)
    first_paint.hold(b)
    first_paint.after_first_paint(lambda: ran.append(1))
    first_paint.after_first_paint(lambda: ran.append(2))
    first_paint.release(a)
    qtbot.wait(20)
    assert ran == []                             # b has not painted yet
    first_paint.release(b)
    assert ran == []                             # from the next turn of the event loop
    qtbot.waitUntil(lambda: ran == [1, 2], timeout=2000)
