"""``%spalloc`` and ``%%spalloc``: allocate SpiNNaker boards from a notebook.

The magics are a thin layer: options are parsed with the same definitions as the ``spalloc``
command-line tool (:mod:`spalloc_nb._magicargs`), then the work is done by
:class:`spalloc.Job` and :mod:`spalloc_nb._api`.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Enum, Float, Int, List, Unicode

from spalloc_nb import _api
from spalloc_nb._cellscope import CellFailed, end_job, failure_reason, run_with_job
from spalloc_nb._config import JOB_SETTINGS, nearest_name
from spalloc_nb._magicargs import (
    SUBCOMMANDS,
    HelpRequested,
    Parser,
    alloc_parser,
    check_job_chip,
    split_line,
    subcommand_first,
    subcommand_parser,
    where_kwargs,
)
from spalloc_nb._registry import registry
from spalloc_nb._servermemory import ServerMemory

__all__ = ["CellFailed", "SpallocMagics"]

# Settings where the command-line tools read a negative number as "none".
_NEGATIVE_IS_NONE = ("keepalive", "reconnect_delay", "timeout", "max_dead_boards", "max_dead_links")


@magics_class
class SpallocMagics(Magics):
    """``%spalloc`` / ``%%spalloc``, configured with ``%config SpallocMagics.<setting> = ...``.

    Settings left as ``None`` come from the spalloc config file and ``SPALLOC_*`` variables.
    """

    hostname = Unicode(
        None,
        allow_none=True,
        config=True,
        help="spalloc server hostname, or 'local' for the embedded emulator.",
    )
    port = Int(None, allow_none=True, config=True, help="spalloc server port.")
    owner = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Owner of new jobs (by convention an email address).",
    )
    keepalive = Float(
        None,
        allow_none=True,
        config=True,
        help="Seconds without a keepalive before the server frees the boards "
        "(negative: never; dangerous in a notebook).",
    )
    reconnect_delay = Float(
        None, allow_none=True, config=True, help="Seconds between reconnection attempts."
    )
    timeout = Float(
        None,
        allow_none=True,
        config=True,
        help="Seconds to wait for the server to answer (negative: forever).",
    )
    machine = Unicode(None, allow_none=True, config=True, help="Machine to allocate on.")
    tags = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="Tags a machine must have.",
    )
    min_ratio = Float(
        None,
        allow_none=True,
        config=True,
        help="Minimum aspect ratio when asking for a number of boards.",
    )
    max_dead_boards = Int(
        None,
        allow_none=True,
        config=True,
        help="Dead boards allowed in an allocation (negative: any).",
    )
    max_dead_links = Int(
        None,
        allow_none=True,
        config=True,
        help="Dead links allowed in an allocation (negative: any).",
    )
    require_torus = Bool(None, allow_none=True, config=True, help="Require wrap-around links.")

    destroy_at_exit = Bool(
        True, config=True, help="Destroy the jobs this kernel created when it exits."
    )
    progress_after = Float(
        2.0, config=True, help="Seconds a blocking wait lasts before progress is shown."
    )
    use_widgets = Enum(
        ["auto", "always", "never"],
        "auto",
        config=True,
        help="Show jobs as live widgets: 'auto' does so inside a kernel.",
    )
    short_errors = Bool(
        True, config=True, help="Show spalloc errors as one line instead of a traceback."
    )
    default_name = Unicode(
        "job", config=True, help="Variable %%spalloc binds the job to unless --name is given."
    )

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        registry.destroy_at_exit = self.destroy_at_exit
        self.observe(self._destroy_at_exit_changed, names="destroy_at_exit")
        self._servers = ServerMemory()
        self.observe(self._server_changed, names=["hostname", "port"])

    def _server_changed(self, change: dict[str, Any]) -> None:
        # Told otherwise: the configured server applies again.
        self._servers.forget()

    def _destroy_at_exit_changed(self, change: dict[str, Any]) -> None:
        registry.destroy_at_exit = bool(change["new"])

    # -- configuration --------------------------------------------------------------------

    def _load_config(self, cfg: Any, section_names: Any = None, traits: Any = None) -> None:
        # Hint at misspelt settings in the notebook itself; traitlets would only warn once
        # per code location, which a notebook user may never see again.
        name = type(self).__name__
        if name in cfg:
            known = self.trait_names(config=True)
            for key in list(cfg[name]):
                if key not in known and not key[:1].isupper():
                    close = nearest_name(key, known)
                    hint = f"; did you mean {close!r}?" if close else ""
                    print(
                        f"{name} has no setting {key!r}{hint} "
                        f"(settings: {', '.join(sorted(known))})",
                        file=sys.stderr,
                    )
                    # Forget it, so the hint is not repeated at every reload.
                    del cfg[name][key]
        super()._load_config(cfg, section_names=section_names, traits=traits)

    def _settings(self) -> dict[str, Any]:
        """The spalloc settings set through traits (``None`` = unset), negatives mapped."""
        values = {key: getattr(self, key) for key in JOB_SETTINGS}
        for key in _NEGATIVE_IS_NONE:
            if values[key] is not None and values[key] < 0:
                values[key] = None
                values[f"_{key}_none"] = True
        return values

    def _defaults(self) -> SimpleNamespace:
        """Option defaults: the config file, with the traits that are set on top."""
        from spalloc.config import load_config
        from spalloc.exceptions import ConfigError

        try:
            base = load_config()
        except ConfigError as exc:  # a bad file or SPALLOC_* value
            raise UsageError(f"spalloc config: {exc}") from None
        values = {key: getattr(base, key) for key in (*JOB_SETTINGS, "ignore_version", "proxy")}
        settings = self._settings()
        for key in JOB_SETTINGS:
            if settings[key] is not None or settings.get(f"_{key}_none"):
                values[key] = settings[key]
        self._servers.apply(values)
        return SimpleNamespace(**values)

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are used without a shell"
        return self.shell

    def _widgets_enabled(self) -> bool:
        if self.use_widgets == "never":
            return False
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return False
        if self.use_widgets == "always":
            return True
        return getattr(self.shell, "kernel", None) is not None

    def display_job(self, job: Any) -> None:
        """Display a :class:`spalloc.Job` (registered with IPython's display formatter).

        Displayed rather than returned as a bundle so that the output gets a display id:
        when the job ends, or the kernel or the extension goes, the output is replaced by
        the job's final static view.
        """
        _api.display_job(job, widget=self._widgets_enabled())

    # -- the magic ------------------------------------------------------------------------

    @line_cell_magic
    def spalloc(self, line: str, cell: str | None = None) -> Any:
        """Allocate SpiNNaker boards, or inspect the spalloc server.

        ::

            %spalloc [WHAT] [options]      a Job, shown as a live widget; returns at once
            %spalloc 3 --wait --name job   block until ready, bind the job to `job`
            %spalloc --local 1             use the embedded emulator (no real boards)
            %%spalloc [WHAT] [options]     allocate, wait, run the cell with `job` bound,
                                           destroy the job afterwards (unless --keep)
            %spalloc ps [--owner O] [--machine M]     live jobs
            %spalloc machines | machine NAME          machines and their load
            %spalloc job ID                           a widget for an existing job
            %spalloc destroy ID [REASON]              destroy any job
            %spalloc where-is --board M X Y Z | --physical M C F B | --chip M X Y
                              | --job-chip JOB X Y
            %spalloc jobs                             the jobs this kernel created

        WHAT is nothing or 1 (one board), N (at least N boards), W H (W x H triads) or
        X Y Z (one specific board). ``%spalloc <subcommand> -h`` shows every option.
        Settings: ``%config SpallocMagics`` (over the spalloc config file).
        """
        __tracebackhide__ = True  # a failing %%spalloc body's traceback starts at the body
        tokens = subcommand_first(split_line(line))
        try:
            if tokens and tokens[0] in SUBCOMMANDS:
                if cell is not None:
                    raise UsageError(
                        f"%%spalloc: {tokens[0]!r} is a line magic: use %spalloc {tokens[0]}"
                    )
                return self._subcommand(tokens[0], tokens[1:])
            if cell is None:
                return self._line(tokens)
            return self._cell(tokens, cell)
        except HelpRequested:
            return None

    # -- allocation -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Spalloc, network and config errors as a one-line ``UsageError`` (if short_errors)."""
        from spalloc.exceptions import SpallocError

        try:
            yield
        except (SpallocError, OSError, LookupError) as exc:
            if not self.short_errors:
                raise
            text = str(exc) or type(exc).__name__
            raise UsageError(f"spalloc: {type(exc).__name__}: {text}") from None

    def _create(self, args: Any) -> Any:
        from spalloc.ui.options import LOCAL, job_arguments

        if args.resume is None:
            # The library's one rule: with no owner given, ``<login>@local`` on the emulator.
            from spalloc._local import default_owner

            args.owner = default_owner(args.hostname, args.owner)
        if args.name is not None and not args.name.isidentifier():
            raise UsageError(f"--name {args.name!r} is not a valid variable name")
        try:
            what, kwargs = job_arguments(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        from spalloc._local import EmulatedBoardsWarning
        from spalloc.job import Job

        with self._errors(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EmulatedBoardsWarning)
            job = Job(*what, **kwargs)
        for warning in caught:  # one plain line, not a Python warning with a file path
            if issubclass(warning.category, EmulatedBoardsWarning):
                print(f"spalloc: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        if args.hostname == LOCAL:
            _api.mark_emulated(job)
        registry.add_job(job)
        return job

    def _show_progress(self, job: Any) -> Any:
        """Show the job while a blocking wait goes on; returns a display handle or ``None``."""
        from IPython.display import DisplayHandle

        if self._widgets_enabled():
            display_id = _api.display_job(job, widget=True)
            return None if display_id is None else DisplayHandle(display_id)
        snapshot = getattr(job, "snapshot", None)
        state = getattr(getattr(snapshot, "state", None), "name", "waiting")
        print(f"Job {job.id}: {state}, waiting until ready...", file=sys.stderr)
        return None

    def _wait(self, job: Any, *, show_now: bool) -> Any:
        """Block until ``job`` is ready; show progress at once or after ``progress_after``."""
        from spalloc.exceptions import StateChangeTimeoutError

        handle = None
        with self._errors():
            if not show_now:
                try:
                    job.wait_until_ready(timeout=self.progress_after)
                    return None
                except StateChangeTimeoutError:
                    pass
            handle = self._show_progress(job)
            job.wait_until_ready()
        return handle

    def _line(self, tokens: list[str]) -> Any:
        args = alloc_parser(False, self._defaults(), self.default_name).parse_args(tokens)
        self._servers.remember(args, tokens)
        job = self._create(args)
        if args.wait:
            try:
                handle = self._wait(job, show_now=False)
            except BaseException as exc:
                end_job(job, failure_reason(exc))
                raise
            if handle is not None:
                # The result below shows the job; drop the progress view to avoid a twin.
                from spalloc_nb._displays import displays

                displays.discard(job, handle.display_id)
                handle.update({"text/plain": ""}, raw=True)
        if args.name:
            self._shell.user_ns[args.name] = job
        return job

    def _cell(self, tokens: list[str], cell: str) -> None:
        __tracebackhide__ = True  # IPython hides this frame in tracebacks
        args = alloc_parser(True, self._defaults(), self.default_name).parse_args(tokens)
        self._servers.remember(args, tokens)
        name = args.name or self.default_name
        if not name.isidentifier():
            raise UsageError(f"--name {name!r} is not a valid variable name")
        job = self._create(args)

        def wait() -> None:
            __tracebackhide__ = True
            self._wait(job, show_now=self._widgets_enabled())

        run_with_job(self._shell, job, cell, name=name, keep=args.keep, wait=wait)

    # -- the twins of the command-line tools ----------------------------------------------

    def _subcommand(self, name: str, argv: list[str]) -> Any:
        from spalloc.ui.options import server_settings

        if name == "jobs":
            return self._owned_jobs(argv)
        defaults = self._defaults()  # read the config once per command
        args = subcommand_parser(name, defaults).parse_args(argv)
        self._servers.remember(args, argv)
        try:
            server = server_settings(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        where: dict[str, Any] = {
            "hostname": server.hostname,
            "port": server.port,
            "timeout": server.timeout,
        }
        with self._errors():
            if name == "ps":
                return _api.ps(args.owner, args.machine, **where)
            if name == "machines":
                return _api.machines(**where)
            if name == "machine":
                return _api.machine(
                    args.machine_name,
                    live_map=self._widgets_enabled(),
                    owner=defaults.owner,
                    **where,
                )
            if name == "destroy":
                reason = " ".join(args.reason) or None
                message = _api.destroy(args.job_id, reason, **where)
                for job in registry.jobs():
                    if job.id == args.job_id:
                        registry.release_job(job)  # nothing left to destroy at exit
                return message
            if name == "where-is":
                kwargs = where_kwargs(args)
                check_job_chip(kwargs)
                return _api.where_is(**kwargs, **where)
            return self._existing_job(args)
        return None  # pragma: no cover - every subcommand returns above

    def _existing_job(self, args: Any) -> Any:
        from spalloc.job import Job
        from spalloc.ui.options import LOCAL, job_arguments

        args.resume = args.job_id
        _what, kwargs = job_arguments(args)
        job = Job(**kwargs)
        if args.hostname == LOCAL:
            _api.mark_emulated(job)
        # Not ours to destroy, but its keepalive stops when the extension goes.
        registry.add_closer(job, job.close)
        return job

    def _owned_jobs(self, argv: list[str]) -> Any:
        Parser("%spalloc jobs", "The jobs this kernel created.").parse_args(argv)
        from spalloc_nb._html import Table, job_view

        if not registry.jobs():
            return _api.Message(
                "No jobs created by this kernel are alive (%spalloc N creates one)."
            )
        rows = []
        for job in registry.jobs():
            view = job_view(job.snapshot)
            rows.append(
                (
                    view.job_id,
                    view.state,
                    view.power,
                    len(view.boards),
                    view.machine or "",
                    view.hostname or "",
                )
            )
        return Table(
            ("ID", "State", "Power", "Boards", "Machine", "Hostname"),
            tuple(rows),
            "Jobs created by this kernel",
        )
