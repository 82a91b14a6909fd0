"""Docker ``session`` mode: each session channel's program is a container of its own.

:mod:`.session` is the channel's session, :mod:`.container` the life of its
container (create, files, attach, start, stop, removal), :mod:`.ops` the
parts that hold no state (the create request, files, exit code, removal with
retries), and :mod:`.archive` authentication's files as a tar archive.
"""
