"""A Kubernetes API server for tests, whose pods are containers in the local Docker engine.

Never a production component: it exists so that the Kubernetes backend, and
``kubectl``, can be tested on machines where no cluster can run. It speaks
the real wire protocol for the calls those clients make (discovery, pods
create/get/list/watch/delete, exec and attach over WebSocket with the
``channel.k8s.io`` protocols, bearer-token authentication, errors as
``Status`` objects), and runs each pod container as one Docker container, so
processes, terminals and exit codes are real. See ``docs/kubeapi.md``.

- :mod:`.server`: :class:`~.server.KubeAPIServer`, start and stop in-process;
  :mod:`.command` is the same as a process.
- :mod:`.resource`: the HTTP routes; :mod:`.watch` the watch streams;
  :mod:`.streams` exec and attach; :mod:`.discovery` and :mod:`.table` what
  kubectl reads.
- :mod:`.store` the pods and their versions; :mod:`.podspec` what a pod may
  ask for; :mod:`.podstatus` its status; :mod:`.runtime` its containers.
"""

from __future__ import annotations

from conch_container.testing.kubeapi.runtime import LABEL_SERVER
from conch_container.testing.kubeapi.server import KubeAPIServer

__all__ = ["LABEL_SERVER", "KubeAPIServer"]
