"""``python -m vibebox_cli``: the same as the ``vibebox`` command."""

import sys

from vibebox_cli.main import main

sys.exit(main())
