"""The command-line tools: ``spalloc``, ``spalloc-job``, ``spalloc-ps``, ``spalloc-machine``
and ``spalloc-where-is``.

One module per tool, each with ``main(argv=None) -> int``; shared pieces live in private
modules (the option definitions and pure renderers shared with the notebook live in
:mod:`spalloc.ui`): terminal output (``_output``), the watch loop (``_watch``), the ``-c``
command (``_command``), and the server connection (``open_client``, over
:mod:`spalloc.service`) with the error-to-exit-code wrapper (``_common``). Nothing here is
imported by ``import spalloc``.
"""

__all__: list[str] = []
