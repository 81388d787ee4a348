"""A ``%%spalloc`` cell's job: bound while the body runs, destroyed (or kept) when it ends.

:func:`run_with_job` runs a cell body with its job bound to a variable and ends the job
afterwards, whatever happened; :class:`CellFailed` is how a failed body fails the cell.
:func:`end_job` and :func:`failure_reason` are shared with ``%spalloc --wait``, which ends a
job the same way when the wait fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spalloc.exceptions import SpallocError
from spalloc_nb._registry import registry

__all__ = ["CellFailed", "end_job", "failure_reason", "run_with_job"]


class CellFailed(SpallocError):
    """The body of a ``%%spalloc`` cell failed: the cell fails too, with a one-line summary."""

    def __init__(self, error: BaseException, job_id: int | None, *, destroyed: bool) -> None:
        fate = "destroyed" if destroyed else "kept (--keep)"
        super().__init__(
            f"%%spalloc: the cell failed ({type(error).__name__}: {error}); job {job_id} was {fate}"
        )
        self.error = error
        self.job_id = job_id

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a second traceback of the body's error.
        return [str(self)]


def run_with_job(
    shell: Any, job: Any, cell: str, *, name: str, keep: bool, wait: Callable[[], object]
) -> None:
    """Call *wait*, bind *job* to *name*, run *cell*; then destroy the job unless *keep*.

    Raises:
        CellFailed: the body raised (its traceback is already shown).
    """
    __tracebackhide__ = True  # IPython hides this frame in tracebacks
    reason = "Cell finished."
    try:
        wait()
        shell.user_ns[name] = job
        result = run_body(shell, cell)
        error = result.error_before_exec or result.error_in_exec
    except BaseException as exc:
        reason = failure_reason(exc)
        raise
    else:
        if isinstance(error, KeyboardInterrupt):
            reason = failure_reason(error)
            raise error
        if error is not None:
            # The body's traceback is already shown; fail the cell with one line more.
            reason = failure_reason(error)
            raise CellFailed(error, job.id, destroyed=not keep) from error
    finally:
        if keep:
            registry.release_job(job)
        else:
            end_job(job, reason)


def run_body(shell: Any, cell: str) -> Any:
    """Run a ``%%spalloc`` body so that its tracebacks name the cell the user ran.

    IPython has already counted the outer cell (``execution_count`` is one ahead while it
    runs), so a body run without history would be called ``Cell In[N+1]``.
    """
    counted = shell.execution_count
    shell.execution_count = max(1, counted - 1)
    try:
        return shell.run_cell(cell, store_history=False)
    finally:
        shell.execution_count = counted


def failure_reason(exc: BaseException) -> str:
    """The destroy reason for a job whose cell (or wait) ended with *exc*."""
    if isinstance(exc, KeyboardInterrupt):
        return "Keyboard interrupt."
    return f"Cell failed: {type(exc).__name__}"


def end_job(job: Any, reason: str) -> None:
    """Destroy a job the magics made (best effort) and leave its outputs as its final view."""
    from spalloc_nb._displays import displays

    registry.release_job(job)
    try:
        job.destroy(reason)
    except Exception:  # destroy is best effort here; the keepalive frees the boards anyway
        pass
    # Now, from this cell: the job's outputs end as its final view (saved with the cell).
    displays.finish(job, reason)
