"""``python -m conch_container.testing.kubeapi``: the test Kubernetes API server."""

import sys

from conch_container.testing.kubeapi.command import main

sys.exit(main())
