"""``python -m conch_container.testing.authconfig``: the test webhook server."""

import sys

from conch_container.testing.authconfig.command import main

sys.exit(main())
