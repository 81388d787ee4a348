"""Machine definitions served identically by the emulator and the reference server.

The IPs follow the reference's standard scheme (PROTOCOL.md §5.6) with the bases used in
Appendix A; they only ever appear as strings in replies and are never contacted. Dead boards get
no location or IP, as in Appendix A's ``md``.
"""

from __future__ import annotations

from spalloc.geometry import Machine
from tests.conftest import make_appendix_machines, single_board, standard_machine

__all__ = ["differential_machines", "peer_machines", "spinnaker1m"]


def differential_machines() -> list[Machine]:
    """Appendix A's ``m``, ``md`` and ``board``, a 3x2 ``g``, ``e`` (§9 #6) and ``c`` (#10)."""
    return [
        *make_appendix_machines(),
        standard_machine("g", {"g", "three"}, 3, 2, "10.15.0.0", cabinet=2),
        # Triad (1, 1) entirely dead: the reference under-reports the height of a 2x2 job.
        standard_machine(
            "e",
            {"e"},
            2,
            2,
            "10.17.0.0",
            cabinet=3,
            dead_boards=frozenset({(1, 1, 0), (1, 1, 1), (1, 1, 2)}),
        ),
        # Dead boards in both corner triads: a dead-free triad exists only in the middle (#10).
        standard_machine(
            "c",
            {"c"},
            3,
            1,
            "10.19.0.0",
            cabinet=4,
            dead_boards=frozenset({(0, 0, 1), (2, 0, 1)}),
        ),
    ]


def peer_machines() -> list[Machine]:
    """What the emulator serves to the official clients: ``m`` (default) and ``board``."""
    return [
        standard_machine("m", {"default"}, 2, 2, "10.11.0.0"),
        single_board("board", {"single"}, "10.12.0.2"),
    ]


def spinnaker1m() -> list[Machine]:
    """A SpiNNaker1M-sized machine: 20x20 triads, 1200 boards, ten cabinets."""
    return [standard_machine("spin1m", {"default"}, 20, 20, "10.32.0.0")]
