"""``python -m astrobench.cli`` runs the command line, as ``python -m astrobench`` does."""

import sys

from astrobench.cli import main

sys.exit(main())
