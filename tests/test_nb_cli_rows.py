"""The notebook's listings and the CLIs' output come from the same rows.

Each notebook table is laid out with the CLI's own layouts and compared with what the tool
prints for the same server state, so neither can drift from the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import spalloc_nb
from spalloc.cli import machine as machine_cli
from spalloc.cli import ps as ps_cli
from spalloc.cli import where_is as where_is_cli
from spalloc.client import ProtocolClient
from spalloc.emulator import Emulator
from spalloc.ui.render import plain, render_definitions, render_table
from spalloc_nb._html import Table
from tests._cli import WAIT, server
from tests.test_cli_tools import three_jobs

pytestmark = pytest.mark.usefixtures("isolated_config")


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator], appendix_machines: Any) -> Emulator:
    emulator = emulator_factory(appendix_machines, power_delay=0.0)
    with ProtocolClient(emulator.host, emulator.port, timeout=WAIT) as client:
        three_jobs(client)
    return emulator


def cli(capsys: pytest.CaptureFixture[str], main: Callable[[list[str]], int], *argv: str) -> str:
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def table_lines(table: Table) -> str:
    """The table as the CLIs lay out a table, header first."""
    return plain(render_table([table.headers, *table.rows])) + "\n"


def where(emu: Emulator) -> dict[str, Any]:
    return {"hostname": emu.host, "port": emu.port, "timeout": WAIT}


def test_ps_rows_agree(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    table = spalloc_nb.ps(**where(emu))
    assert len(table.rows) == 3
    assert table_lines(table) == cli(capsys, ps_cli.main, *server(emu))


def test_machines_rows_agree(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    table = spalloc_nb.machines(**where(emu))
    assert [row[0] for row in table.rows] == ["m", "md", "board"]
    assert table_lines(table) == cli(capsys, machine_cli.main, *server(emu))


def test_machine_rows_agree(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    summary = spalloc_nb.machine("m", live_map=False, **where(emu))
    detailed = cli(capsys, machine_cli.main, "m", "--detailed", *server(emu))
    definitions = plain(
        render_definitions(list(zip(summary.details.headers, *summary.details.rows, strict=True)))
    )
    assert detailed.startswith(definitions + "\n\n")
    assert [row[1] for row in summary.jobs.rows] == [1, 2]
    assert detailed.endswith("\n" + table_lines(summary.jobs))
    # The text map is the tool's output without --detailed.
    assert summary.board_map_text + "\n" == cli(capsys, machine_cli.main, "m", *server(emu))


@pytest.mark.parametrize(
    ("keys", "argv"),
    [
        ({"job_id": 2, "chip_x": 1, "chip_y": 14}, ["--job-chip", "2", "1", "14"]),
        ({"machine": "m", "chip_x": 13, "chip_y": 14}, ["--chip", "m", "13", "14"]),
        ({"machine": "m", "x": 1, "y": 1, "z": 0}, ["--board", "m", "1", "1", "0"]),
        (
            {"machine": "m", "cabinet": 0, "frame": 0, "board": 9},
            ["--physical", "m", "0", "0", "9"],
        ),
    ],
)
def test_where_is_rows_agree(
    emu: Emulator, capsys: pytest.CaptureFixture[str], keys: dict[str, Any], argv: list[str]
) -> None:
    table = spalloc_nb.where_is(**keys, **where(emu))
    printed = cli(capsys, where_is_cli.main, *argv, *server(emu))
    assert plain(render_definitions(list(table.rows))) + "\n" == printed
