"""The Kubernetes backend's ``session`` mode: a pod per session channel, running its program."""
