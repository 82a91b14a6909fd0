"""conch-container: an SSH gateway that puts every user into a fresh container.

A drop-in replacement for ContainerSSH, built on Twisted Conch.
"""

__version__ = "0.1.0"
