"""The Edit panel: strength of the shown model result, enhance a selection, learn the noise, spectral
repair of a Ctrl+drag rectangle, and named model chains. Everything it does is a core call
(:mod:`workbench.core.document.version_ops`, :meth:`Recording.set_strength`) run through the one generator worker;
every change can be undone (Edit > Undo, Ctrl+Z).

Strength: dragging the slider is heard at once — the playback engine mixes ``wet + g * (dry - wet)``
in its callback with a ramped gain, nothing is recomputed — and the value is committed to the version
(one undo step, views/metrics/export follow) when the slider is released or moved with the keyboard.
"""

from __future__ import annotations

import json
import math

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QRadioButton, QSlider, QVBoxLayout, QWidget)

from ..core.enhance.chain import ChainEnhancer, is_chain_spec
from ..core.enhance.editing import Box, Strength, with_attenuation_limit
from ..core.errors import WorkbenchError
from ..core.document.version_ops import (MIN_PAUSE_FOR_PROFILE_S, EnhanceRequest, noise_profile_from_pauses,
                                         noise_profile_model, repair_version, run_request)
from .workers import GeneratorWorker, job_steps

SETTINGS_CHAINS = "edit/chains"


def strength_text(mix: float) -> str:
    """``70 % (removes at most 10.5 dB)``; ``100 % (no limit)``."""
    s = Strength(mix)
    limit = "no limit" if math.isinf(s.limit_db) else f"removes at most {s.limit_db:.1f} dB"
    return f"{100 * mix:.0f} % ({limit})"


class EditPanel(QWidget):
    """See the module docstring. ``attach(document)`` binds it to the window's document (playback follows the
    strengths through the document; ``transport`` is for a document without those signals).

    Signals:
        errorOccurred(str): one line for the person (bad selection, model error ...).
        busyChanged(bool): a background operation started/ended.
    """

    errorOccurred = Signal(str)
    busyChanged = Signal(bool)
    operationFinished = Signal(str)

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.document = None
        self.transport = None
        self.selection_s: tuple[float, float] | None = None
        self.noise_span_s: tuple[float, float] | None = None
        #: non-speech spans the noise was learned from (Learn from pauses), else None
        self.noise_pauses: list[tuple[float, float]] | None = None
        #: the current recording's speech activity (the window's speech lane), when known
        self.speech_activity = None
        self._worker: GeneratorWorker | None = None
        self._job = None
        self._dragging = False
        self._showing_params = False
        self._press_mix = 1.0
        layout = QVBoxLayout(self)

        # -- strength
        box = QGroupBox("Strength of the shown result")
        form = QVBoxLayout(box)
        self.strength_version = QLabel("(show a model result)")
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(0, 100)
        self.strength_slider.setValue(100)
        self.strength_slider.setToolTip("Wet/dry: 100 % is the model's output, 0 % the original. Heard at once "
                                        "while playing; Ctrl+Z undoes a change")
        self.strength_label = QLabel(strength_text(1.0))
        self.strength_slider.sliderPressed.connect(self._on_slider_pressed)
        self.strength_slider.sliderReleased.connect(self._on_slider_released)
        self.strength_slider.valueChanged.connect(self._on_slider_value)
        for w in (self.strength_version, self.strength_slider, self.strength_label):
            form.addWidget(w)
        layout.addWidget(box)

        # -- model for selections / chains
        box = QGroupBox("Selection (Shift+drag on a pane)")
        grid = QFormLayout(box)
        self.selection_label = QLabel("no selection")
        grid.addRow("Time", self.selection_label)
        self.model_box = QComboBox()
        self.model_box.setEditable(True)
        self.model_box.setToolTip("A model id, or a chain like wpe-dereverb+deepfilternet3")
        grid.addRow("Model", self.model_box)
        self.atten_spin = QDoubleSpinBox()
        self.atten_spin.setRange(0.0, 100.0)
        self.atten_spin.setDecimals(1)
        self.atten_spin.setSuffix(" dB")
        self.atten_spin.setSpecialValueText("off")
        self.atten_spin.setToolTip("The model's own attenuation limit, for models that have one (DeepFilterNet's "
                                   "atten_lim, applied inside the network). The strength slider is the "
                                   "workbench's wet/dry mix and works for every model.")
        grid.addRow("Model's own limit", self.atten_spin)
        row = QHBoxLayout()
        self.enhance_selection_button = QPushButton("Enhance selection")
        self.enhance_selection_button.setToolTip("Run the model on the selection only (1 s context, 20 ms "
                                                 "crossfades); everything else stays bit-identical")
        self.enhance_selection_button.clicked.connect(self.enhance_selection)
        self.enhance_all_button = QPushButton("Enhance all")
        self.enhance_all_button.setToolTip("Run the model (or chain) on the whole recording, with the learned "
                                           "noise for classical models")
        self.enhance_all_button.clicked.connect(self.enhance_all)
        row.addWidget(self.enhance_selection_button)
        row.addWidget(self.enhance_all_button)
        grid.addRow(row)
        row = QHBoxLayout()
        self.learn_button = QPushButton("Learn noise")
        self.learn_button.setToolTip("Use the selection (a noise-only pause) as the noise estimate of the "
                                     "classical models")
        self.learn_button.clicked.connect(self.learn_noise)
        self.learn_pauses_button = QPushButton("Learn from pauses")
        self.learn_pauses_button.setToolTip("Use every non-speech span the speech activity lane found (View > "
                                            "Speech activity lane) as the noise estimate of the classical models")
        self.learn_pauses_button.clicked.connect(self.learn_from_pauses)
        self.forget_button = QPushButton("Forget")
        self.forget_button.clicked.connect(lambda: self._set_noise(None))
        row.addWidget(self.learn_button)
        row.addWidget(self.learn_pauses_button)
        row.addWidget(self.forget_button)
        grid.addRow(row)
        self.noise_label = QLabel("noise: tracked by each model")
        grid.addRow(self.noise_label)
        layout.addWidget(box)

        # -- repair
        box = QGroupBox("Spectral repair (Ctrl+drag a rectangle)")
        grid = QFormLayout(box)
        self.box_spins = []
        row = QHBoxLayout()
        for text, maximum, suffix in (("from", 1e6, " s"), ("to", 1e6, " s"), ("", 1e6, " Hz"), ("", 1e6, " Hz")):
            spin = QDoubleSpinBox()
            spin.setRange(0.0, maximum)
            spin.setDecimals(3 if suffix == " s" else 0)
            spin.setSuffix(suffix)
            self.box_spins.append(spin)
        times, freqs = QHBoxLayout(), QHBoxLayout()
        times.addWidget(self.box_spins[0])
        times.addWidget(self.box_spins[1])
        freqs.addWidget(self.box_spins[2])
        freqs.addWidget(self.box_spins[3])
        grid.addRow("Time", times)
        grid.addRow("Frequency", freqs)
        self.attenuate_radio = QRadioButton("Attenuate")
        self.interpolate_radio = QRadioButton("Interpolate from around")
        self.attenuate_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.attenuate_radio)
        group.addButton(self.interpolate_radio)
        self.gain_spin = QDoubleSpinBox()
        self.gain_spin.setRange(-120.0, 0.0)
        self.gain_spin.setValue(-30.0)
        self.gain_spin.setSuffix(" dB")
        row.addWidget(self.attenuate_radio)
        row.addWidget(self.gain_spin)
        grid.addRow(row)
        grid.addRow(self.interpolate_radio)
        self.repair_button = QPushButton("Repair")
        self.repair_button.setToolTip("Make a new version of the shown one with the rectangle repaired")
        self.repair_button.clicked.connect(self.repair)
        grid.addRow(self.repair_button)
        layout.addWidget(box)

        # -- chains
        box = QGroupBox("Chains")
        grid = QFormLayout(box)
        self.chain_name = QLineEdit()
        self.chain_name.setPlaceholderText("name, e.g. Dereverb + DFN3")
        self.chain_spec = QLineEdit()
        self.chain_spec.setPlaceholderText("wpe-dereverb+deepfilternet3")
        self.save_chain_button = QPushButton("Save chain")
        self.save_chain_button.clicked.connect(self.save_chain)
        grid.addRow("Name", self.chain_name)
        grid.addRow("Models", self.chain_spec)
        grid.addRow(self.save_chain_button)
        layout.addWidget(box)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.chains: dict[str, str] = self._load_chains()
        self._update_enabled()

    # ------------------------------------------------------------------ wiring
    def attach(self, document, transport=None) -> None:
        self.document = document
        self.transport = transport
        document.currentVersionChanged.connect(lambda _v: self._show_strength())
        document.recordingChanged.connect(lambda _r: self._on_recording())
        document.strengthChanged.connect(self._on_strength_changed)
        document.catalogueChanged.connect(self._fill_models)
        # The selection and the repair rectangle are the workspace's: the panes, the transport, a
        # restored session or this panel's own boxes may set them.
        if hasattr(document, "loopChanged"):
            document.loopChanged.connect(self.set_loop)
            document.repairBoxChanged.connect(self._show_box)
            for spin in self.box_spins:
                spin.valueChanged.connect(self._box_edited)
            self.set_loop(document.workspace.loop)
            self._show_box(document.workspace.repair_box)
        self._fill_models()
        self._show_strength()
        ws = getattr(document, "workspace", None)
        if ws is not None:
            # The run parameters are the workspace's: a restored session sets them, the controls write them.
            if ws.edit_params:
                self._show_params(ws.edit_params)
            else:
                ws.set_edit_params(self.run_params())
            document.stateChanged.connect(self._on_state)
            self.model_box.currentTextChanged.connect(self._params_edited)
            self.atten_spin.valueChanged.connect(self._params_edited)
            self.gain_spin.valueChanged.connect(self._params_edited)
            self.interpolate_radio.toggled.connect(self._params_edited)

    def run_params(self) -> dict:
        """What the controls set: the model (or chain), its own limit, the repair mode and gain, the noise
        learned for classical models (a span or the pauses it was learned from)."""
        return {"model": self.model_box.currentText().strip(), "model_limit_db": self.atten_spin.value(),
                "repair": "interpolate" if self.interpolate_radio.isChecked() else "attenuate",
                "gain_db": self.gain_spin.value(),
                "noise_span_s": None if self.noise_span_s is None else list(self.noise_span_s),
                "noise_pauses_s": None if not self.noise_pauses else [list(p) for p in self.noise_pauses]}

    def _params_edited(self, *_args) -> None:
        ws = getattr(self.document, "workspace", None)
        if ws is not None and not self._showing_params:
            ws.set_edit_params(self.run_params())

    def _on_state(self, key: str) -> None:
        if key == "edit_params":
            self._show_params(self.document.workspace.edit_params)

    def _show_params(self, params: dict) -> None:
        """Put the workspace's run parameters into the controls."""
        self._showing_params = True
        try:
            model = params.get("model")
            if isinstance(model, str) and model != self.model_box.currentText().strip():
                i = self.model_box.findText(model)
                if i >= 0:
                    self.model_box.setCurrentIndex(i)
                else:
                    self.model_box.setEditText(model)
            for key, spin in (("model_limit_db", self.atten_spin), ("gain_db", self.gain_spin)):
                if isinstance(params.get(key), (int, float)):
                    spin.setValue(float(params[key]))
            if params.get("repair") in ("interpolate", "attenuate"):
                (self.interpolate_radio if params["repair"] == "interpolate" else self.attenuate_radio).setChecked(True)
            span, pauses = params.get("noise_span_s"), params.get("noise_pauses_s")
            span = tuple(float(x) for x in span) if isinstance(span, list) and len(span) == 2 else None
            pauses = ([tuple(float(x) for x in p) for p in pauses if isinstance(p, list) and len(p) == 2]
                      if isinstance(pauses, list) else None)
            if (span, pauses or None) != (self.noise_span_s, self.noise_pauses):
                self._set_noise(span, pauses)
        finally:
            self._showing_params = False

    def _fill_models(self) -> None:
        ws = getattr(self.document, "workspace", None)
        current = (ws.edit_params.get("model") if ws is not None else None) or self.model_box.currentText()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        specs = []
        if self.document is not None:
            # Never list here (that imports every model module, ~0.5 s on the GUI thread at start-up): the
            # Models panel lists on its worker and the catalogue's change signal fills this box again.
            specs = [e.spec for e in self.document.catalogue.known_entries() if not is_chain_spec(e.spec)]
        for name, spec in self.chains.items():
            self.model_box.addItem(f"{name}: {spec}", spec)
        for spec in specs:
            self.model_box.addItem(spec, spec)
        if current:
            i = self.model_box.findText(current)
            if i >= 0:
                self.model_box.setCurrentIndex(i)
            else:
                self.model_box.setEditText(current)
        self.model_box.blockSignals(False)
        self._params_edited()

    def model_spec(self) -> str:
        i = self.model_box.currentIndex()
        text = self.model_box.currentText().strip()
        if i >= 0 and self.model_box.itemText(i) == text:
            return str(self.model_box.itemData(i))
        return text

    def set_selection(self, start_s: float | None, stop_s: float | None = None) -> None:
        """The time selection (the loop region); ``None`` clears it."""
        if start_s is None or stop_s is None or stop_s <= start_s:
            self.selection_s = None
            self.selection_label.setText("no selection")
        else:
            self.selection_s = (float(start_s), float(stop_s))
            self.selection_label.setText(f"{start_s:.3f} – {stop_s:.3f} s")
        self._update_enabled()

    def set_loop(self, region) -> None:
        """Slot for the transport's ``loopChanged(object)``."""
        if region is None:
            self.set_selection(None)
        else:
            self.set_selection(*region)

    def set_box(self, t0_s: float, t1_s: float, f0_hz: float, f1_hz: float) -> None:
        """Slot for the view's ``boxSelected``: sets the repair rectangle (the workspace's, when attached)."""
        if self.document is not None and hasattr(self.document, "set_repair_box"):
            self.document.set_repair_box((t0_s, t1_s, f0_hz, f1_hz))
        else:
            self._show_box((t0_s, t1_s, f0_hz, f1_hz))

    def _show_box(self, box) -> None:
        if box is None:
            return  # the spin boxes keep their last values; nothing is drawn
        for spin, value in zip(self.box_spins, box):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self._update_enabled()

    def _box_edited(self, _value: float) -> None:
        if self.document is not None:
            self.document.set_repair_box(tuple(s.value() for s in self.box_spins))

    def box(self) -> Box:
        return Box(*(s.value() for s in self.box_spins))

    def _on_recording(self) -> None:
        self._set_noise(None)
        self._show_strength()

    def _set_noise(self, span, pauses=None) -> None:
        self.noise_span_s = span
        self.noise_pauses = list(pauses) if pauses else None
        self._params_edited()
        if self.noise_pauses:
            total = sum(b - a for a, b in self.noise_pauses)
            self.noise_label.setText(f"noise: learned from {len(self.noise_pauses)} pauses, {total:.1f} s "
                                     "(classical models)")
            return
        self.noise_label.setText("noise: tracked by each model" if span is None
                                 else f"noise: learned from {span[0]:.2f} – {span[1]:.2f} s (classical models)")

    def set_speech_activity(self, result) -> None:
        """The current recording's :class:`~workbench.core.measure.vad.VadResult` (``None``: not known)."""
        self.speech_activity = result
        self._update_enabled()

    def _update_enabled(self) -> None:
        rec = self.document.recording if self.document is not None else None
        busy = self._worker is not None
        self.enhance_selection_button.setEnabled(rec is not None and self.selection_s is not None and not busy)
        self.learn_button.setEnabled(rec is not None and self.selection_s is not None)
        self.learn_pauses_button.setEnabled(rec is not None and self.speech_activity is not None)
        self.enhance_all_button.setEnabled(rec is not None and not busy)
        self.repair_button.setEnabled(rec is not None and not busy)

    # ------------------------------------------------------------------ strength
    def _shown(self):
        doc = self.document
        if doc is None or doc.recording is None or doc.version is None:
            return None, None
        return doc.recording, doc.version

    def _show_strength(self) -> None:
        rec, v = self._shown()
        has = v is not None and v.kind.is_result
        self.strength_slider.setEnabled(has)
        self.strength_version.setText(v.name if has else "(show a model result)")
        mix = rec.strength_of(v).mix if has else 1.0
        self.strength_slider.blockSignals(True)
        self.strength_slider.setValue(int(round(100 * mix)))
        self.strength_slider.blockSignals(False)
        self.strength_label.setText(strength_text(mix))
        self._update_enabled()

    def _on_slider_pressed(self) -> None:
        rec, v = self._shown()
        self._dragging = True
        self._press_mix = rec.strength_of(v).mix if v is not None else 1.0

    def _on_slider_value(self, value: int) -> None:
        mix = value / 100.0
        self.strength_label.setText(strength_text(mix))
        rec, v = self._shown()
        if v is None or not v.kind.is_result:
            return
        if self._dragging:
            # Heard at once: the playback engine mixes the two buffers it already holds.
            if hasattr(self.document, "preview_strength"):
                self.document.preview_strength(v, mix)
            elif self.transport is not None:
                self.transport.engine.set_strength_of(v, mix)
        else:
            self._commit(mix)

    def _on_slider_released(self) -> None:
        self._dragging = False
        self._commit(self.strength_slider.value() / 100.0)

    def _commit(self, mix: float) -> None:
        rec, v = self._shown()
        if v is None or not v.kind.is_result:
            return
        rec.set_strength(v, Strength(mix))

    def _on_strength_changed(self, rec, version) -> None:
        if self.transport is not None and not hasattr(self.document, "preview_strength"):
            self.transport.engine.set_strength_of(version, rec.strength_of(version).mix)
        if self.document is not None and version is self.document.version:
            self._show_strength()

    # ------------------------------------------------------------------ operations
    def _run(self, label: str, work, *args, **kwargs) -> None:
        if self._worker is not None:
            return
        self.status.setText(f"{label}…")
        ws = getattr(self.document, "workspace", None)
        rec = self.document.recording if self.document is not None else None
        if ws is not None and rec is not None and rec in ws.recordings:
            # A job of the recording: the window lists it, closing the recording cancels it.
            self._job = ws.new_job(job_steps(work, *args, **kwargs), rec, f"{label.lower()} on {rec.name}")
            self._worker = GeneratorWorker(self._job.steps())
        else:
            self._job = None
            self._worker = GeneratorWorker(work, *args, **kwargs)
        self._worker.returned.connect(lambda result, label=label: self._done(label, result))
        self._worker.errored.connect(self._failed)
        self._worker.cancelled.connect(lambda: self.status.setText(f"{label}: cancelled"))
        self._worker.finished.connect(self._finished)
        self.busyChanged.emit(True)
        self._update_enabled()
        self._worker.start()

    def _done(self, label: str, result) -> None:
        versions = result if isinstance(result, list) else [result]
        names = ", ".join(getattr(v, "name", "?") for v in versions)
        limit = self.atten_spin.value()
        used = f" (model's own limit {limit:g} dB)" if limit > 0 and label.startswith("Enhance") else ""
        self.status.setText(f"{label}: added {names}{used}")
        if self.document is not None and versions and hasattr(versions[-1], "source"):
            self.document.set_version(versions[-1])
        self.operationFinished.emit(label)

    def _failed(self, exc) -> None:
        text = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        self.status.setText(text)
        self.errorOccurred.emit(text)

    def _finished(self) -> None:
        self._worker = None
        self.busyChanged.emit(False)
        self._update_enabled()

    def _load_model(self):
        """The chosen model (a chain named by a saved chain gets its name); the request learns the noise."""
        spec = self.model_spec()
        if not spec:
            raise WorkbenchError("choose a model (or type a chain like wpe-dereverb+deepfilternet3)")
        enhancer = self.document.catalogue.load(spec)
        name = next((n for n, s in self.chains.items() if s == spec), None)
        if name and isinstance(enhancer, ChainEnhancer):
            enhancer = ChainEnhancer(enhancer.steps, name=name)
        if self.atten_spin.value() > 0:
            # Says which limit is used: the model's own (or an error naming the model that has none).
            enhancer = with_attenuation_limit(enhancer, self.atten_spin.value())
        return spec, enhancer

    def _noise_span_for(self, enhancer) -> tuple[float, float] | None:
        """The learned noise span when the model takes a noise profile (classical models), else None."""
        return self.noise_span_s if hasattr(enhancer, "with_noise_profile") else None

    def _noise_pauses_for(self, enhancer) -> tuple[tuple[float, float], ...] | None:
        """The pauses the noise was learned from when the model takes a noise profile, else None."""
        if not self.noise_pauses or not hasattr(enhancer, "with_noise_profile"):
            return None
        return tuple(tuple(p) for p in self.noise_pauses)

    def _guard(self, fn) -> None:
        try:
            fn()
        except WorkbenchError as exc:
            self._failed(exc)

    def enhance_selection(self) -> None:
        def go():
            rec = self.document.recording
            if self.selection_s is None:
                raise WorkbenchError("select a time span first (Shift+drag on a pane)")
            spec, enhancer = self._load_model()
            request = EnhanceRequest(spec=spec, regions_s=(tuple(self.selection_s),),
                                     noise_profile_s=self._noise_span_for(enhancer),
                                     noise_pauses_s=self._noise_pauses_for(enhancer))
            self._run("Enhance selection", run_request, rec, enhancer, request)
        self._guard(go)

    def enhance_all(self) -> None:
        def go():
            rec = self.document.recording
            spec, enhancer = self._load_model()
            request = EnhanceRequest(spec=spec, noise_profile_s=self._noise_span_for(enhancer),
                                     noise_pauses_s=self._noise_pauses_for(enhancer))
            self._run("Enhance", run_request, rec, enhancer, request)
        self._guard(go)

    def learn_noise(self) -> None:
        def go():
            rec = self.document.recording
            if self.selection_s is None:
                raise WorkbenchError("select a noise-only span first (Shift+drag on a pane)")
            from workbench.core.enhance.editing import check_span
            check_span(self.selection_s, rec.source.duration_s, rec.name, "noise profile")
            # Checked against a classical model now, so a span shorter than one frame is said at once.
            probe = self.document.catalogue.load("wiener")
            noise_profile_model(rec, probe, self.selection_s)
            self._set_noise(self.selection_s)
            self.status.setText("Noise learned; classical models run from this panel use it")
        self._guard(go)

    def learn_from_pauses(self) -> None:
        def go():
            rec = self.document.recording
            result = self.speech_activity
            if rec is None or result is None:
                raise WorkbenchError("turn on View > Speech activity lane first: its pauses are the noise")
            probe = self.document.catalogue.load("wiener")
            noise_profile_from_pauses(rec, probe, result.pauses)  # says at once when no pause is long enough
            usable = [(a, b) for a, b in result.pauses if b - a >= MIN_PAUSE_FOR_PROFILE_S]
            self._set_noise(None, usable)
            self.status.setText(f"Noise learned from {len(usable)} pauses; classical models run from this panel "
                                "use it")
        self._guard(go)

    def repair(self) -> None:
        def go():
            rec, v = self._shown()
            if rec is None:
                raise WorkbenchError("open a recording first")
            box = self.box()
            gain = None if self.interpolate_radio.isChecked() else self.gain_spin.value()
            self._run("Repair", repair_version, rec, v, box, gain_db=gain,
                      interpolate=self.interpolate_radio.isChecked())
        self._guard(go)

    # ------------------------------------------------------------------ chains
    def _load_chains(self) -> dict[str, str]:
        if self.settings is None:
            return {}
        try:
            data = json.loads(str(self.settings.value(SETTINGS_CHAINS, "{}") or "{}"))
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (ValueError, TypeError):
            return {}

    def save_chain(self) -> None:
        """Check every step is a known model, then keep the chain under its name (listed first)."""
        def go():
            spec = "+".join(p.strip() for p in self.chain_spec.text().split("+"))
            name = self.chain_name.text().strip() or spec
            if not is_chain_spec(spec):
                raise WorkbenchError("a chain is two or more model ids joined by '+', like wpe-dereverb+deepfilternet3")
            from workbench.core.enhance.registry import load_enhancer
            load_enhancer(spec).close()  # raises ModelError naming an unknown step
            self.chains[name] = spec
            if self.settings is not None:
                self.settings.setValue(SETTINGS_CHAINS, json.dumps(self.chains))
            self._fill_models()
            self.model_box.setCurrentIndex(self.model_box.findData(spec))
            self.status.setText(f"Chain {name!r} saved: {spec}")
        self._guard(go)

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(5000)
