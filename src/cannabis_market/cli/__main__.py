"""``python -m cannabis_market.cli ...``: the same as the ``cannabis-market`` command."""

import sys

from cannabis_market.cli import main

sys.exit(main())
