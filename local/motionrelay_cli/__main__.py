"""`python -m motionrelay_cli` (also the `motionrelay` console command)."""

import sys

from motionrelay_cli.cli import main

if __name__ == "__main__":
    sys.exit(main())
