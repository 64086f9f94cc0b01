"""`python -m benchctl` = `benchctl`."""
import sys

from benchctl.cli import main

sys.exit(main())
