"""Start the workbench window: ``python main.py [FILES...] [--screenshot OUT.png] [--demo]``."""

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["gui", *sys.argv[1:]]))
