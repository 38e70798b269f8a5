"""`python app.py` serves the workbench at http://127.0.0.1:7860 (see `workbench ui --help`)."""

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
