"""The command-line tools: ``spalloc``, ``spalloc-job``, ``spalloc-ps``, ``spalloc-machine``
and ``spalloc-where-is``.

One module per tool, each with ``main(argv=None) -> int``; shared pieces live in private
modules: option definitions (``_options``, also used by the notebook magics), pure renderers
of the replies :mod:`spalloc.models` parses (``_render``), terminal output (``_output``),
the watch loop (``_watch``), the one-shot connection of the admin tools (``_connection``),
the ``-c`` command (``_command``) and the error-to-exit-code wrapper (``_common``). Nothing
here is imported by ``import spalloc``.
"""

__all__: list[str] = []
