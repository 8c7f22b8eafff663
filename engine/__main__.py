"""`python -m engine` is the `guideline` command."""

import sys

from .cli import main

sys.exit(main())
