"""The Kubernetes backend's client layer: everything that talks to the API server.

- :mod:`.connection`, :mod:`.kubeconfig`, :mod:`.sources`,
  :mod:`.credentials`: where the API server is and how to authenticate
  (``kubernetes.connection``, in-cluster discovery, a kubeconfig file), and
  the official client's ``ApiClient`` built from it.
- :mod:`.client`: :class:`~.client.KubernetesClient`, the backend's thread
  pool and one client per distinct connection.
- :mod:`.ratelimit`: the client-side token bucket (``qps``/``burst``) every
  control call passes.
- :mod:`.pods`: :class:`~.pods.PodAPI`, the control calls (create, get,
  list, delete, wait) on the backend's own bounded thread pool;
  :mod:`.podstatus` reads a pod's status.
- :mod:`.errors`: :class:`~.errors.KubernetesError`, carrying the message
  code of the situation, and the translation of the client's exceptions.
- :mod:`.channels`, :mod:`.websocket` and :mod:`.streamopen`: exec and
  attach streams, a WebSocket in the reactor speaking the
  ``v5``/``v4.channel.k8s.io`` protocol (no thread held per stream).

Nothing here knows about SSH sessions or the backend's modes.
"""
