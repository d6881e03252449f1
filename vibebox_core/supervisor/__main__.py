"""``python -m vibebox_core.supervisor <project-dir>``: run one session's supervisor.

The module name is the marker :func:`vibebox_core.supervisor.server.probe` looks for in a
supervisor's command line, the same before and after the move into a package, so supervisors
started by an older vibebox are still recognised.
"""

import sys

from vibebox_core.supervisor.server import main

sys.exit(main())
