"""Application start-up: QApplication, settings identity, pyqtgraph options, the main window, and the
``--screenshot`` mode. Benchmarks observe start-up through :func:`run_gui`'s ``on_mark`` and
``after_first_paint`` hooks (``bench/gui_open_driver.py``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

APP_NAME = "Workbench"
ORG_NAME = "SpeechEnhancementWorkbench"
ORG_DOMAIN = "workbench.invalid"
#: Interpreter thread switch interval while the GUI runs (seconds; CPython's default is 0.005).
GUI_SWITCH_INTERVAL_S = 0.001


def configure_pyqtgraph() -> None:
    import pyqtgraph as pg

    # col-major: an image array is indexed [x, y] = [time column, frequency bin], which is exactly the
    # (frames, bins) layout of every spectrogram in the core, so no transposes are needed.
    pg.setConfigOptions(imageAxisOrder="col-major", antialias=False, foreground="#c8ced8")


def demo_clip_path() -> Path:
    import workbench_assets

    fn = getattr(workbench_assets, "demo_clip_path", None)
    if fn is not None:
        return Path(fn())
    return Path(workbench_assets.__file__).parent / "demo" / "demo_noisy.wav"


def make_application(argv: list[str] | None = None):
    from . import compat

    compat.apply()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else [sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setOrganizationDomain(ORG_DOMAIN)
    configure_pyqtgraph()
    compat.collect_garbage_on_gui_thread()
    # The GUI thread re-takes the GIL many times per repaint (PySide releases it around Qt calls); each
    # time a busy worker (model, tiles, playback preparation) is running Python it waits up to the
    # switch interval. 1 ms instead of CPython's 5 ms shortened the longest event-loop stalls while a
    # model runs (10-minute file, 2 cores: 11-16 ms -> about 7 ms) at no measurable cost to the run.
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)
    return app


def run_gui(files: list[str], screenshot: str | None = None, demo: bool = False,
            enhance: list[str] | tuple[str, ...] = (), session: str | None = None, *,
            on_mark: Callable[[str], None] | None = None,
            after_first_paint: Callable[[object, object], None] | None = None) -> int:
    """Open the main window with ``files``; with ``screenshot`` save a PNG once painted and exit.

    With ``enhance`` (model ids or model paths), once the panes are painted the model panel runs each
    model in turn on the current recording (on its worker thread, as the Enhance button does); the
    newest version is shown, and a screenshot waits until it is painted. With ``session`` the saved
    session is restored first (recordings, versions, references, view settings); ``files`` open after it.

    ``on_mark(name)`` is called at the start-up milestones ``qapp`` (QApplication created), ``window``
    (shown), ``spectrogram`` (first time every pane shows its tiles) and ``first_paint`` (panes and
    overview complete); ``after_first_paint(app, window)`` then runs from the event loop instead of the
    scripted models and screenshot (benchmarks drive the window with it).

    Returns the process exit status: 0, or 2 when a screenshot was requested but a file could not be
    opened, a model could not be run, or the panes did not finish painting within 120 s.
    """
    def mark(name: str) -> None:
        if on_mark is not None:
            on_mark(name)

    app = make_application()
    mark("qapp")
    from PySide6.QtCore import QTimer

    from .main_window import MainWindow

    errors: list[str] = []

    def report_to_stderr(title: str, message: str) -> None:
        errors.append(message)
        for line in message.splitlines() or [title]:  # several bad files: one "error:" line each
            print(f"error: {line}", file=sys.stderr, flush=True)

    window = MainWindow(error_reporter=report_to_stderr if screenshot else None)
    if screenshot:
        window.resize(1500, 950)
        window.ask_unsaved = lambda unsaved: "discard"  # a scripted run keeps nothing and asks nothing
    paths = list(files)
    if demo:
        paths.insert(0, str(demo_clip_path()))
    window.show()
    mark("window")
    status = {"code": 0}
    pending = list(enhance)

    def first_paint() -> None:
        window.view.paint_now()
        mark("first_paint")
        window.view.painted.disconnect(first_paint)
        if after_first_paint is not None:
            QTimer.singleShot(0, lambda: after_first_paint(app, window))
        elif pending and window.document.recording is not None:
            QTimer.singleShot(0, run_next_model)
        elif screenshot:
            QTimer.singleShot(30, save_and_quit)

    def fail(message: str) -> None:
        report_to_stderr("Model", message)
        if screenshot:
            status["code"] = 2
            save_and_quit()

    def run_next_model() -> None:
        spec = pending.pop(0)
        panel = window.model_panel
        if spec not in panel.model_specs():
            if Path(spec).exists():
                # A model file or folder: load it first (worker thread), then run it.
                def start_loaded(spec=str(Path(spec))) -> None:
                    panel.select(spec)
                    if not panel.start():
                        fail(f"{spec}: could not start ({panel.last_error or 'busy'})")

                def idle(busy: bool) -> None:
                    if not busy:
                        panel.busyChanged.disconnect(idle)
                        if str(Path(spec)) in panel.model_specs():
                            # After the load's own runFinished has been delivered.
                            QTimer.singleShot(0, start_loaded)
                panel.busyChanged.connect(idle)
                panel.load_path(spec)
                return
            fail(f"unknown model {spec!r}; built-in ids: {', '.join(panel.model_specs())}")
            return
        panel.select(spec)
        if not panel.start():
            fail(f"{spec}: could not start ({panel.last_error or 'busy'})")

    run_state = {"running": False}

    def model_finished(outcome: str) -> None:
        was_run, run_state["running"] = run_state["running"], False
        if outcome != "done":
            fail(window.model_panel.last_error or f"model run {outcome}")
            return
        if not was_run:
            return  # a model file finished loading; its run starts from `loaded`
        if pending:
            QTimer.singleShot(0, run_next_model)
        elif screenshot:
            if window.view.is_painted():
                QTimer.singleShot(30, save_and_quit)
            else:
                def painted_after_model() -> None:
                    window.view.painted.disconnect(painted_after_model)
                    window.view.paint_now()
                    QTimer.singleShot(30, save_and_quit)
                window.view.painted.connect(painted_after_model)

    if pending:
        window.model_panel.runStarted.connect(lambda _id: run_state.update(running=True))
        window.model_panel.runFinished.connect(model_finished)

    def save_and_quit() -> None:
        out = Path(screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.model_panel.ensure_listed()  # normally filled shortly after start-up; show it in the picture
        if not window.grab().save(str(out)):
            print(f"error: {out}: could not write the screenshot", file=sys.stderr)
            status["code"] = 2
        window.close()
        app.quit()

    def give_up() -> None:
        print("error: the panes did not finish painting within 120 s", file=sys.stderr)
        status["code"] = 2
        save_and_quit()

    def first_spectrogram() -> None:
        window.view.paint_now()
        mark("spectrogram")
        window.view.tilesPainted.disconnect(first_spectrogram)

    window.view.tilesPainted.connect(first_spectrogram)
    window.view.painted.connect(first_paint)
    if session:
        if not window.open_session_file(session) and screenshot:
            window.close()
            return 2
        if screenshot and window.session_problems:
            status["code"] = 2
        if screenshot and not paths and not window.document.recordings:
            QTimer.singleShot(100, save_and_quit)
    if paths:
        opened = window.open_files(paths)
        if screenshot and not opened:
            window.close()
            return 2
    elif screenshot and not session:
        QTimer.singleShot(100, save_and_quit)
    if screenshot:
        QTimer.singleShot(120_000, give_up)
    code = app.exec()
    from .workers import stop_all_workers
    stop_all_workers()  # no pool thread may still run Python while the interpreter shuts down
    if screenshot and errors and status["code"] == 0:
        status["code"] = 2
    return status["code"] or code
