"""Machine definitions served identically by the emulator and the reference server.

The IPs follow the reference's standard scheme (PROTOCOL.md §5.6) with the bases used in
Appendix A; they only ever appear as strings in replies and are never contacted. Dead boards get
no location or IP, as in Appendix A's ``md``.
"""

from __future__ import annotations

from spalloc.geometry import Machine, default_board_locations, standard_ip

__all__ = ["differential_machines", "peer_machines", "spinnaker1m", "standard_machine"]

Board = tuple[int, int, int]


def standard_machine(
    name: str,
    tags: set[str],
    width: int,
    height: int,
    base_ip: str,
    *,
    cabinet: int = 0,
    dead_boards: frozenset[Board] = frozenset(),
    dead_links: frozenset[tuple[int, int, int, int]] = frozenset(),
) -> Machine:
    """A machine in the default physical layout with standard IPs."""
    locations = {
        board: loc
        for board, loc in default_board_locations(width, height, cabinet).items()
        if board not in dead_boards
    }
    return Machine(
        name=name,
        tags=frozenset(tags),
        width=width,
        height=height,
        dead_boards=dead_boards,
        dead_links=dead_links,
        board_locations=locations,
        board_ips={board: standard_ip(base_ip, *loc) for board, loc in locations.items()},
    )


def single_board(name: str, tags: set[str], ip: str) -> Machine:
    """A one-board machine as the reference's ``Machine.single_board`` builds it."""
    return Machine(
        name=name,
        tags=frozenset(tags),
        width=1,
        height=1,
        dead_boards=frozenset({(0, 0, 1), (0, 0, 2)}),
        board_locations={(0, 0, 0): (0, 0, 0)},
        board_ips={(0, 0, 0): ip},
    )


def differential_machines() -> list[Machine]:
    """Appendix A's ``m``, ``md`` and ``board``, a 3x2 ``g``, ``e`` (§9 #6) and ``c`` (#10)."""
    return [
        standard_machine("m", {"default"}, 2, 2, "10.11.0.0"),
        standard_machine(
            "md",
            {"dead"},
            2,
            2,
            "10.13.0.0",
            cabinet=1,
            dead_boards=frozenset({(1, 1, 1)}),
            dead_links=frozenset({(0, 0, 0, 2), (0, 0, 2, 5)}),
        ),
        single_board("board", {"single"}, "10.12.0.2"),
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
