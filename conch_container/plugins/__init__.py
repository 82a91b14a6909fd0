"""Plugins of conch-container: backends (:class:`~conch_container.interfaces.IBackendFactory`).

A module in any ``conch_container/plugins/`` directory on ``sys.path`` that
defines objects providing a plugin interface is found by
:func:`twisted.plugin.getPlugins`; see ``docs/extending.md``. This package has
no ``__init__`` logic beyond extending its path, as Twisted's plugin howto
describes ("Alternate Plugin Packages").
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
