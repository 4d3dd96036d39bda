"""One non-modal list of problems instead of a stack of message boxes.

Opening several bad files (command line, a drop, File > Open) used to raise one message box per file,
stacked on top of each other. :class:`ProblemList` collects them: the first problem opens it, later ones
are appended to the same list while it is open (a problem already listed is not repeated).
"""

from __future__ import annotations

from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QLabel, QListWidget, QPushButton,
                               QVBoxLayout, QWidget)


class ProblemList(QDialog):
    """A non-modal dialog listing problems, one line each (file name first, then what is wrong).

    Use :meth:`add` to append; :meth:`problems` returns what is listed.
    """

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("problemList")
        self.setModal(False)
        self.setWindowTitle(title)
        self.heading = QLabel("")
        self.heading.setWordWrap(True)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("Copy")
        copy.setToolTip("Copy every problem as text")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(self.text()))
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.heading)
        lay.addWidget(self.list, 1)
        lay.addWidget(buttons)
        self.resize(620, 260)

    def add(self, title: str, message: str) -> None:
        """Append each line of ``message`` (under ``title``, shown in the heading when it is the first)."""
        have = set(self.problems())
        first = not have
        for line in (message.splitlines() or [title]):
            line = line.strip()
            if line and line not in have:
                self.list.addItem(line)
                self.list.item(self.list.count() - 1).setToolTip(f"{title}: {line}")
                have.add(line)
        heading = title if first else f"{self.list.count()} problems"
        self.heading.setText(heading)
        self.setWindowTitle(heading)

    def problems(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def text(self) -> str:
        """Every listed problem, one per line."""
        return "\n".join(self.problems())
