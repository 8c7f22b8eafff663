"""`python -m engine` is the `guideline` command."""

import sys

from engine.cli import main

sys.exit(main())
