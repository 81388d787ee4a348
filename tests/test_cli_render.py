"""Pure pieces of the command-line tools: renderers, -c substitution, option parsing."""

from __future__ import annotations

import argparse
import io

import pytest

from spalloc.cli._command import (
    UnsafeValueError,
    command_values,
    exit_status,
    shell_command,
    substitute,
)
from spalloc.cli._output import Output, colour_wanted
from spalloc.config import SpallocConfig
from spalloc.exceptions import ProtocolError
from spalloc.models import (
    JobDescription,
    JobMachineInfo,
    JobSnapshot,
    JobStateInfo,
    MachineDescription,
    WhereIs,
    parse_jobs,
    parse_machines,
)
from spalloc.states import JobState
from spalloc.ui.options import (
    add_job_options,
    add_server_options,
    job_arguments,
    server_settings,
)
from spalloc.ui.render import (
    BoardGroup,
    ethernet_csv,
    job_key,
    machine_detail,
    plain,
    ps_table,
    render_boards,
    render_cells,
    render_definitions,
    render_table,
    where_is_info,
)

# --------------------------------------------------------------------------- layouts


def test_board_map_of_a_2x2_machine_labelled_by_coordinates() -> None:
    groups = [
        BoardGroup([(x, y, z)], (f"{x}{y}{z}", ""))
        for x in range(2)
        for y in range(2)
        for z in range(3)
    ]
    assert plain(render_boards(groups)) == "\n".join(
        [
            " ___     ___",
            "/012\\___/112\\___",
            "\\___/011\\___/111\\",
            "/010\\___/110\\___/",
            "\\___/002\\___/102\\___",
            "    \\___/001\\___/101\\",
            "    /000\\___/100\\___/",
            "    \\___/   \\___/",
        ]
    )


def test_board_map_styles_inner_and_outer_edges_and_dead_links() -> None:
    lines = render_boards(
        [BoardGroup([(0, 0, 0), (0, 0, 1)], (" . ", "dim"), "inner", "outer")],
        dead_links=[(0, 0, 0, 3)],
        dead_style="red",
    )
    styles = {style for line in lines for _, style in line}
    assert {"inner", "outer", "red", "dim"} <= styles
    assert render_boards([]) == []


def test_table_aligns_ints_right_and_strips_trailing_space() -> None:
    lines = render_table(
        [[("ID", "h"), ("Name", "h"), ("Note", "h")], [7, "a", ""], [123, ("bb", "green"), "x"]]
    )
    assert plain(lines) == "ID   Name  Note\n  7  a\n123  bb    x"


def test_definitions_right_align_keys_and_indent_continuations() -> None:
    lines = render_definitions([("A", 1), ("Longer", "x\ny"), ("None", None)])
    assert plain(lines) == "     A: 1\nLonger: x\n        y\n  None: None"
    assert render_definitions([]) == []


def test_cells_wrap_at_the_width() -> None:
    cells = [((f"{i:02d}", ""),) for i in range(5)]
    assert plain(render_cells(cells, width=10)) == "00  01  02\n03  04"
    assert render_cells([]) == []


def test_job_keys_are_spreadsheet_style() -> None:
    assert [job_key(i) for i in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]


def test_ethernet_csv_is_sorted_with_a_header() -> None:
    assert ethernet_csv([((8, 4), "c"), ((0, 0), "a"), ((4, 8), "b")]) == (
        "x,y,hostname\n0,0,a\n4,8,b\n8,4,c\n"
    )


def _job(**changes: object) -> JobDescription:
    wire = {
        "job_id": 3,
        "owner": "me",
        "start_time": None,
        "keepalive": 60.0,
        "state": 1,
        "power": None,
        "args": [],
        "kwargs": {},
        "allocated_machine_name": None,
        "boards": None,
        "keepalivehost": "",
    }
    wire.update(changes)
    return JobDescription.from_wire(wire)


def test_ps_shows_queued_jobs_blank_and_empty_host_without_parentheses() -> None:
    header, row = plain(ps_table([_job()])).splitlines()
    assert row[:9] == " 3  queue" and not row[9 : header.index("Keepalive")].strip()
    assert row[header.index("Keepalive") :] == "60.0       me"
    header, row = plain(ps_table([_job(keepalivehost="h", state=7)])).splitlines()
    assert row[:5] == " 3  7" and row.endswith("60.0       me (h)")


def test_ps_filters_by_owner_and_machine() -> None:
    jobs = parse_jobs(
        [
            {"job_id": 1, "owner": "a", "state": 3, "allocated_machine_name": "m", "boards": []},
            {"job_id": 2, "owner": "b", "state": 3, "allocated_machine_name": "n", "boards": []},
        ]
    )
    assert len(ps_table(jobs, owner="a")) == 2
    assert len(ps_table(jobs, machine="n")) == 2
    assert len(ps_table(jobs, machine="z")) == 1


def test_machine_without_jobs_ends_with_two_blank_lines() -> None:
    machine = MachineDescription.from_wire(
        {
            "name": "b",
            "tags": ["single"],
            "width": 1,
            "height": 1,
            "dead_boards": [[0, 0, 1], [0, 0, 2]],
            "dead_links": [],
        }
    )
    text = plain(machine_detail(machine, []))
    assert text.endswith(" ___\n/ . \\\n\\___/\n\n")
    assert "In-use: 0 of 1" in text


def test_where_is_hides_job_chip_for_free_boards() -> None:
    location = WhereIs.from_wire(
        {
            "machine": "m",
            "logical": [0, 1, 2],
            "physical": [0, 0, 5],
            "chip": [9, 21],
            "board_chip": [5, 1],
            "job_id": None,
            "job_chip": None,
        }
    )
    assert location is not None
    text = plain(where_is_info(location, show_board_chip=True))
    assert "Coordinates within board: (5, 1)" in text
    assert "Job using board: None" in text
    assert "within job" not in text
    assert WhereIs.from_wire(None) is None


# --------------------------------------------------------------------------- parsed replies
# One set of types (spalloc.models) serves the library, the tools and the notebook.


def test_missing_keys_read_as_none_and_java_values_pass() -> None:
    state = JobStateInfo.from_wire({})
    assert [getattr(state, key) for key in state._fields] == [JobState.unknown] + [None] * 5
    java = JobStateInfo.from_wire({"state": 1, "power": False, "reason": "", "keepalive": 60})
    assert (java.state, java.power, java.reason, java.keepalive) == (
        JobState.queued,
        False,
        "",
        60.0,
    )
    empty = JobMachineInfo.from_wire({})
    assert empty == {}  # as sent; built from typed values, it holds what a server sends:
    assert JobMachineInfo.from_wire(JobMachineInfo.empty()) == JobMachineInfo.empty()
    assert [getattr(empty, key) for key in empty._fields] == [None] * 5
    (job,) = parse_jobs([{"job_id": 4}])
    assert (job.owner, job.state, job.boards, job.args, job.kwargs) == (
        None,
        JobState.unknown,
        None,
        (),
        {},
    )
    # No owner shows as nothing (not "None"); no keepalive shows as None, as officially.
    assert plain(ps_table([job._replace(keepalive=60.0)])).splitlines()[1].endswith("  60.0")
    assert plain(ps_table([job])).splitlines()[1].endswith("  None")


@pytest.mark.parametrize(
    "parse,wire,field",
    [
        (JobStateInfo.from_wire, {"state": 3, "keepalive": "soon"}, "keepalive"),
        (JobStateInfo.from_wire, {"state": 3, "power": "on"}, "power"),
        (JobStateInfo.from_wire, {"state": 3, "reason": ["x"]}, "reason"),
        (JobMachineInfo.from_wire, {"connections": [[[0], "h"]]}, "connections"),
        (JobMachineInfo.from_wire, {"width": 2.5}, "width"),
        (JobDescription.from_wire, {"job_id": 1, "boards": [[0, 0]]}, "boards"),
        (JobDescription.from_wire, {"job_id": "1"}, "job_id"),
        (JobDescription.from_wire, {"owner": "me"}, "job_id"),
        (MachineDescription.from_wire, {"width": 1, "height": 1}, "name"),
        (MachineDescription.from_wire, {"name": "m", "width": 1}, "height"),
        (
            MachineDescription.from_wire,
            {"name": "m", "width": 1, "height": 1, "dead_links": [[0, 0, 0]]},
            "dead_links",
        ),
        (
            WhereIs.from_wire,
            {
                "machine": "m",
                "logical": [0, 0, 0],
                "physical": [0, 0, 0],
                "chip": [0, 0],
                "board_chip": [0, 0],
                "job_chip": [1],
            },
            "job_chip",
        ),
    ],
)
def test_unusable_values_raise_naming_the_field(parse, wire, field) -> None:
    with pytest.raises(ProtocolError, match=f"'{field}'"):
        parse(wire)


def test_a_reply_of_the_wrong_shape_raises() -> None:
    for parse in (parse_jobs, parse_machines, JobStateInfo.from_wire, WhereIs.from_wire):
        with pytest.raises(ProtocolError, match="unexpected"):
            parse("nonsense")


def test_the_reply_as_sent_reads_like_a_dict_and_stays_out_of_the_repr() -> None:
    state = JobStateInfo.from_wire({"state": 3, "power": 1, "extra": [1]})
    assert state["state"] == 3 and state.get("extra") == [1] and state.get("nope", 5) == 5
    assert state.state is JobState.ready and state.power is True
    assert "extra" not in repr(state) and repr(state).startswith("JobStateInfo(state=")
    info = JobMachineInfo.from_wire({"connections": [[[4, 8], "b"], [[0, 0], "a"]]})
    assert info["connections"] == [[[4, 8], "b"], [[0, 0], "a"]]
    assert info.connections == {(4, 8): "b", (0, 0): "a"}


def test_records_are_built_like_named_tuples_and_are_not_hashable() -> None:
    state = JobStateInfo(JobState.ready, True, 60.0, None, None, None)
    assert state == JobStateInfo(
        state=JobState.ready,
        power=True,
        keepalive=60.0,
        reason=None,
        start_time=None,
        keepalivehost=None,
    )
    assert state["state"] == 3 and type(state["state"]) is int  # as the server sends it
    for args, kwargs, message in [
        ((JobState.ready,), {}, "missing arguments: power"),
        ((1,) * 7, {}, "takes 6 arguments but 7"),
        ((), {"stat": 1}, "unexpected keyword argument 'stat'"),
        ((JobState.ready,), {"state": 1}, "multiple values"),
    ]:
        with pytest.raises(TypeError, match=message):
            JobStateInfo(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no fields"):
        state._replace(stat=1)
    with pytest.raises(TypeError, match="unhashable"):
        hash(state)  # equal to a dict, so hashed as one


def test_machines_sort_tags_and_count_live_boards() -> None:
    (machine,) = parse_machines(
        [
            {
                "name": "m",
                "tags": ["b", "a"],
                "width": 2,
                "height": 1,
                "dead_boards": [[1, 0, 2]],
                "dead_links": [[0, 0, 1, 5]],
            }
        ]
    )
    assert machine.tags == ("a", "b") and machine.num_boards == 5
    assert (1, 0, 2) not in machine.boards() and len(machine.boards()) == 5
    assert machine.dead_links == ((0, 0, 1, 5),)


def test_snapshot_replace_keeps_the_rest() -> None:
    snap = JobSnapshot(job_id=3, connections={(0, 0): "h"})
    changed = snap._replace(state=JobState.ready)
    assert changed != snap and changed.job_id == 3 and changed.hostname == "h"
    assert snap._replace(state=JobState.unknown) == snap


# --------------------------------------------------------------------------- -c commands

VALUES = command_values(7, "10.0.0.1", 16, 8, "/tmp/my dir/ips.csv")


def test_single_argument_is_a_shell_line_with_quoted_values() -> None:
    assert shell_command(["boot {} {w} {h} && run {hostname} {id} {ethernet_ips}"], VALUES) == (
        "boot 10.0.0.1 16 8 && run 10.0.0.1 7 '/tmp/my dir/ips.csv'"
    )


def test_literal_braces_and_unknown_fields_survive() -> None:
    assert substitute("awk '{print}' {{}} {{id}} {", VALUES, quote=True) == (
        "awk '{print}' {} {id} {"
    )


def test_several_arguments_are_words_quoted_whole() -> None:
    assert shell_command(["echo", "{}", ";", "$HOME", "a b"], VALUES) == (
        "echo 10.0.0.1 ';' '$HOME' 'a b'"
    )


@pytest.mark.parametrize("host", ["$(touch pwned)", "a;b", "`id`", "a b", "x'y"])
def test_hostile_hostnames_are_refused_in_a_shell_line(host: str) -> None:
    values = command_values(1, host, 8, 8, "/tmp/x.csv")
    with pytest.raises(UnsafeValueError):
        shell_command(["echo {}"], values)
    # As separate words they are harmless: quoted as a whole.
    assert shell_command(["echo", "{}"], values) == "echo " + substitute("{}", values, quote=True)


def test_exit_status_of_a_signalled_child_is_128_plus_signal() -> None:
    assert exit_status(-2) == 130
    assert exit_status(-15) == 143
    assert exit_status(3) == 3


# --------------------------------------------------------------------------- options


def _parser(config: SpallocConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_job_options(parser, config)
    add_server_options(parser, config, owner=True, keepalive=True)
    return parser


def test_keepalive_takes_fractions_and_minus_one_means_none() -> None:
    parser = _parser(SpallocConfig(hostname="h", owner="o"))
    assert parser.parse_args(["--keepalive", "1.5"]).keepalive == 1.5
    assert parser.parse_args(["--keepalive", "-1"]).keepalive is None
    assert parser.parse_args(["--timeout", "-1"]).timeout is None
    assert parser.parse_args(["--max-dead-boards", "-1"]).max_dead_boards is None


def test_ignore_version_false_means_false() -> None:
    parser = _parser(SpallocConfig(hostname="h"))
    assert parser.parse_args(["--ignore_version", "False"]).ignore_version is False
    assert parser.parse_args(["--ignore_version", "true"]).ignore_version is True
    assert parser.parse_args(["--ignore-version"]).ignore_version is True
    assert parser.parse_args([]).ignore_version is False


def test_config_supplies_defaults_and_arguments_override() -> None:
    config = SpallocConfig(
        hostname="cfg", owner="me", port=1234, keepalive=30.0, tags=("a", "b"), min_ratio=0.5
    )
    what, kwargs = job_arguments(_parser(config).parse_args(["4", "2", "-H", "other"]))
    assert what == (4, 2)
    assert kwargs["hostname"] == "other" and kwargs["port"] == 1234
    assert kwargs["keepalive"] == 30.0 and kwargs["tags"] == ["a", "b"]
    assert kwargs["min_ratio"] == 0.5 and kwargs["config_filenames"] == []
    # A named machine drops the tags (the server refuses both).
    _, kwargs = job_arguments(_parser(config).parse_args(["-m", "m"]))
    assert kwargs["machine"] == "m" and kwargs["tags"] is None


def test_job_arguments_errors_are_value_errors() -> None:
    parser = _parser(SpallocConfig(hostname="h", owner="o"))
    with pytest.raises(ValueError, match=r"4 WHAT values given \(1 2 3 4\); expected either"):
        job_arguments(parser.parse_args(["1", "2", "3", "4"]))
    with pytest.raises(ValueError, match="--owner must be specified"):
        job_arguments(_parser(SpallocConfig(hostname="h")).parse_args([]))
    with pytest.raises(ValueError, match="--hostname"):
        server_settings(_parser(SpallocConfig()).parse_args([]))
    _, kwargs = job_arguments(_parser(SpallocConfig(hostname="h")).parse_args(["-r", "5"]))
    assert kwargs["resume_job_id"] == 5 and "owner" not in kwargs


def test_options_work_on_an_argument_parser_subclass_without_exiting() -> None:
    # The notebook's MagicArgumentParser is such a subclass.
    class Quiet(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise ValueError(message)

    parser = Quiet()
    add_job_options(parser, None)
    add_server_options(parser, None, owner=True, keepalive=True)
    with pytest.raises(ValueError, match="keepalive"):
        parser.parse_args(["--keepalive", "soon"])


# --------------------------------------------------------------------------- colour


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert colour_wanted(_Tty(), {}) is True
    assert colour_wanted(_Tty(), {"NO_COLOR": "1"}) is False
    assert colour_wanted(_Tty(), {"TERM": "dumb"}) is False
    assert colour_wanted(io.StringIO(), {}) is False


def test_coloured_output_keeps_the_plain_layout() -> None:
    lines = render_table(
        [[("ID", "bold underline"), ("State", "bold underline")], [1, ("ready", "green")]]
    )
    stream = _Tty()
    Output(stream, colour=True).lines(lines)
    coloured = stream.getvalue()
    assert "\x1b[" in coloured
    plain_stream = io.StringIO()
    Output(plain_stream).lines(lines)
    assert plain_stream.getvalue() == "ID  State\n 1  ready\n"
