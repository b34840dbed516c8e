"""``python -m optimlab …`` runs the ``optimlab`` command (:mod:`optimlab.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
