"""Small playback widgets: the blind A/B test dialog.

The dialog knows nothing about the engine: it gets the version names and a ``listen(index)`` callable
(the transport bar passes one that switches the engine's audible version without showing which one),
so it can be tested and reused on its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QStackedWidget, QTextBrowser,
    QVBoxLayout, QWidget,
)

LABELS = "XYZUVW"


@dataclass
class BlindTrial:
    """One trial: neutral label -> version index (a fresh shuffle per trial) and the label voted for."""

    mapping: dict[str, int]
    vote: str | None = None
    listened: set[str] = field(default_factory=set)


class BlindABDialog(QDialog):
    """Blind comparison: the chosen versions are shuffled under neutral labels X/Y/Z... for each of N
    trials; the listener plays them (any number of times, at any moment of playback), votes for the one
    they prefer, and sees the mapping and the tally only at the end.

    Args:
        names: every version's name (index = version index).
        listen: called with a version index when the listener picks a label.
        play_pause: optional callable for the dialog's play/pause button.
        preselect: indices ticked at start (default the first two).
        seed: shuffling seed (``None``: fresh randomness each time).

    Signals:
        revealed(dict): emitted at the end with ``{version name: votes}``.
        changed(): a test started or a vote was cast.
    """

    revealed = Signal(dict)
    #: a test started or a vote was cast (:meth:`state` says where it stands)
    changed = Signal()

    def __init__(self, names: Sequence[str], listen: Callable[[int], None], *, parent: QWidget | None = None,
                 play_pause: Callable[[], None] | None = None, preselect: Sequence[int] = (0, 1),
                 trials: int = 5, seed: int | None = None):
        super().__init__(parent)
        self.setWindowTitle("Blind A/B test")
        self.names = list(names)
        self._listen = listen
        self._rng = np.random.default_rng(seed)
        self.trials: list[BlindTrial] = []
        self.current = -1
        self.stack = QStackedWidget()
        lay = QVBoxLayout(self)
        lay.addWidget(self.stack)

        # page 0: choose versions and number of trials
        setup = QWidget()
        sl = QVBoxLayout(setup)
        box = QGroupBox(f"Versions to compare (2 to {len(LABELS)})")
        bl = QVBoxLayout(box)
        self.version_checks: list[QCheckBox] = []
        for i, name in enumerate(self.names):
            cb = QCheckBox(name)
            cb.setChecked(i in preselect)
            cb.toggled.connect(self._update_start)
            bl.addWidget(cb)
            self.version_checks.append(cb)
        sl.addWidget(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Trials"))
        self.trials_spin = QSpinBox()
        self.trials_spin.setRange(1, 50)
        self.trials_spin.setValue(trials)
        row.addWidget(self.trials_spin)
        row.addStretch(1)
        sl.addLayout(row)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        sl.addWidget(self.start_button)
        self.stack.addWidget(setup)

        # page 1: a trial
        trial = QWidget()
        tl = QVBoxLayout(trial)
        self.trial_label = QLabel()
        tl.addWidget(self.trial_label)
        self.listen_row = QHBoxLayout()
        self.vote_row = QHBoxLayout()
        tl.addWidget(QLabel("Listen:"))
        tl.addLayout(self.listen_row)
        tl.addWidget(QLabel("Which do you prefer?"))
        tl.addLayout(self.vote_row)
        self.listen_buttons: dict[str, QPushButton] = {}
        self.vote_buttons: dict[str, QPushButton] = {}
        for lab in LABELS:
            lb = QPushButton(lab)
            lb.setCheckable(True)
            lb.clicked.connect(lambda _=False, lab=lab: self.listen(lab))
            self.listen_row.addWidget(lb)
            self.listen_buttons[lab] = lb
            vb = QPushButton(f"{lab} is better")
            vb.clicked.connect(lambda _=False, lab=lab: self.vote(lab))
            self.vote_row.addWidget(vb)
            self.vote_buttons[lab] = vb
        if play_pause is not None:
            pp = QPushButton("Play / pause")
            pp.clicked.connect(play_pause)
            tl.addWidget(pp)
        self.stack.addWidget(trial)

        # page 2: results
        self.results = QTextBrowser()
        done = QWidget()
        dl = QVBoxLayout(done)
        dl.addWidget(self.results)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        dl.addWidget(close)
        self.stack.addWidget(done)
        self._update_start()

    def chosen(self) -> list[int]:
        return [i for i, cb in enumerate(self.version_checks) if cb.isChecked()]

    def _update_start(self) -> None:
        n = len(self.chosen())
        self.start_button.setEnabled(2 <= n <= len(LABELS))

    def start(self) -> None:
        """Draw a fresh shuffle of the chosen versions for every trial and show the first trial."""
        chosen = self.chosen()
        if not 2 <= len(chosen) <= len(LABELS):
            return
        self.trials = []
        for _ in range(self.trials_spin.value()):
            order = self._rng.permutation(chosen)
            self.trials.append(BlindTrial({LABELS[j]: int(v) for j, v in enumerate(order)}))
        self.current = 0
        self._show_trial()
        self.stack.setCurrentIndex(1)
        self.changed.emit()

    def state(self) -> dict | None:
        """Where a running test stands, by version name: ``{"trials": [{"mapping": {label: name}, "vote":
        label | None}], "current": index}``; ``None`` before the start and once revealed."""
        if not self.trials or self.stack.currentIndex() != 1:
            return None
        return {"trials": [{"mapping": {lab: self.names[i] for lab, i in t.mapping.items()}, "vote": t.vote}
                           for t in self.trials], "current": self.current}

    def resume(self, state: dict) -> bool:
        """Go on with a test :meth:`state` described (the same shuffles and votes); ``False`` when it names
        a version that is not offered here or is not a test in progress."""
        try:
            index = {name: i for i, name in enumerate(self.names)}
            trials = [BlindTrial({str(lab): index[name] for lab, name in t["mapping"].items()},
                                 t.get("vote") if t.get("vote") in t["mapping"] else None)
                      for t in state["trials"]]
            current = int(state["current"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return False
        if not trials or not 0 <= current < len(trials) or any(not set(t.mapping) <= set(LABELS) for t in trials):
            return False
        self.trials, self.current = trials, current
        self._show_trial()
        self.stack.setCurrentIndex(1)
        return True

    def _show_trial(self) -> None:
        t = self.trials[self.current]
        self.trial_label.setText(f"Trial {self.current + 1} of {len(self.trials)}")
        for lab, b in self.listen_buttons.items():
            b.setVisible(lab in t.mapping)
            b.setChecked(False)
        for lab, b in self.vote_buttons.items():
            b.setVisible(lab in t.mapping)
        # Start each trial on X so the previous trial's choice gives nothing away.
        self.listen("X")

    def listen(self, label: str) -> None:
        t = self.trials[self.current]
        if label not in t.mapping:
            return
        for lab, b in self.listen_buttons.items():
            b.setChecked(lab == label)
        t.listened.add(label)
        self._listen(t.mapping[label])

    def vote(self, label: str) -> None:
        """Record the preference for this trial and go on (or reveal after the last trial)."""
        t = self.trials[self.current]
        if label not in t.mapping:
            return
        t.vote = label
        if self.current + 1 < len(self.trials):
            self.current += 1
            self._show_trial()
            self.changed.emit()
        else:
            self.reveal()

    def tally(self) -> dict[str, int]:
        """Votes per version name over the finished trials (every compared version listed)."""
        counts = Counter(self.names[t.mapping[t.vote]] for t in self.trials if t.vote is not None)
        compared = sorted({v for t in self.trials for v in t.mapping.values()})
        return {self.names[v]: counts.get(self.names[v], 0) for v in compared}

    def reveal(self) -> None:
        tally = self.tally()
        lines = ["<h3>Result</h3><table border=1 cellpadding=3><tr><th>version</th><th>votes</th></tr>"]
        for name, votes in sorted(tally.items(), key=lambda kv: -kv[1]):
            lines.append(f"<tr><td>{name}</td><td>{votes}</td></tr>")
        lines.append("</table><h3>Trials</h3><ol>")
        for t in self.trials:
            hidden = ", ".join(f"{lab} = {self.names[v]}" for lab, v in t.mapping.items())
            chosen = f"{t.vote} ({self.names[t.mapping[t.vote]]})" if t.vote else "no vote"
            lines.append(f"<li>{hidden}; preferred {chosen}</li>")
        lines.append("</ol>")
        self.results.setHtml("".join(lines))
        self.stack.setCurrentIndex(2)
        self.revealed.emit(tally)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt naming
        # 1..n listen to X, Y, ... inside the dialog as the transport's keys do outside it.
        offset = int(event.key()) - Qt.Key.Key_1.value
        if self.stack.currentIndex() == 1 and 0 <= offset < len(LABELS):
            self.listen(LABELS[offset])
            return
        super().keyPressEvent(event)
