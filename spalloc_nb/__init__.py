"""Jupyter extension for spalloc: ``%load_ext spalloc_nb``.

::

    %load_ext spalloc_nb
    %spalloc --local 3            # a Job, shown as a live widget
    %%spalloc 1 --local           # allocate, run the cell with `job` bound, destroy

Without magics (VS Code, scripts, marimo) the same features are plain functions:
:func:`job_widget`, :func:`ps`, :func:`machines`, :func:`machine`, :func:`where_is`,
:func:`destroy`, :func:`destroy_all`.

Every job the extension creates is destroyed when the kernel exits or restarts and at
``%unload_ext``. ``%reload_ext`` is an unload followed by a load, so it destroys them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spalloc_nb._api import destroy, job_widget, machine, machines, ps, where_is
from spalloc_nb._displays import displays
from spalloc_nb._registry import EXIT_BUDGET, registry

if TYPE_CHECKING:
    from spalloc_nb.magics import SpallocMagics

__all__ = [
    "destroy",
    "destroy_all",
    "job_widget",
    "load_ipython_extension",
    "machine",
    "machines",
    "ps",
    "unload_ipython_extension",
    "where_is",
]

_JOB_TYPE = ("spalloc.job", "Job")


def destroy_all(
    reason: str = "Destroyed from the notebook.", *, timeout: float | None = EXIT_BUDGET
) -> list[Any]:
    """Destroy every job the extension created, concurrently; returns those not confirmed."""
    return registry.destroy_all(reason, timeout=timeout)


def _loaded(ip: Any) -> SpallocMagics | None:
    for configurable in getattr(ip, "configurables", ()):
        if type(configurable).__name__ == "SpallocMagics" and getattr(
            configurable, "_spalloc_nb_active", False
        ):
            found: SpallocMagics = configurable
            return found
    return None


def load_ipython_extension(ip: Any) -> None:
    """Register ``%spalloc``/``%%spalloc`` and the display of :class:`spalloc.Job`."""
    if _loaded(ip) is not None:
        return  # loading twice must not register twice
    from spalloc_nb.magics import SpallocMagics

    magics = SpallocMagics(shell=ip)
    magics._spalloc_nb_active = True  # type: ignore[attr-defined]
    if magics not in ip.configurables:  # IPython < 9 does not add it by itself
        ip.configurables.append(magics)
    ip.register_magics(magics)
    ip.display_formatter.ipython_display_formatter.for_type_by_name(*_JOB_TYPE, magics.display_job)
    ip.events.register("post_execute", displays.resend_from_threads)


def unload_ipython_extension(ip: Any) -> None:
    """Destroy the jobs the extension created, close its widgets, remove its magics."""
    # Destroy first, so the outputs on screen end showing the jobs as destroyed.
    registry.destroy_all("Notebook extension unloaded.")
    displays.finish_all("Notebook extension unloaded.")
    displays.resend_from_threads()
    try:
        ip.events.unregister("post_execute", displays.resend_from_threads)
    except ValueError:  # not registered (loaded by an older version before a reload)
        pass
    registry.close_all()
    magics = _loaded(ip)
    for formatter in (
        ip.display_formatter.ipython_display_formatter,
        ip.display_formatter.mimebundle_formatter,
    ):
        try:
            formatter.pop(".".join(_JOB_TYPE))
        except KeyError:
            pass
    if magics is not None:
        magics._spalloc_nb_active = False  # type: ignore[attr-defined]
        table = ip.magics_manager.magics
        for kind in ("line", "cell"):
            if getattr(table[kind].get("spalloc"), "__self__", None) is magics:
                del table[kind]["spalloc"]
        while magics in ip.configurables:
            ip.configurables.remove(magics)
