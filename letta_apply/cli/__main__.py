"""`python -m letta_apply.cli`: the `letta-apply` command."""

import sys

from .commands import main

sys.exit(main())
