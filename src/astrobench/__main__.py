"""``python -m astrobench`` (and ``torchrun -m astrobench``) run the command line."""

import sys

from astrobench.cli import main

sys.exit(main())
