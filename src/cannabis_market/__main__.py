"""``python -m cannabis_market ...``: the same as the ``cannabis-market`` command."""

import sys

from cannabis_market.cli import main

sys.exit(main())
