"""The Sans-I/O protocol module: framing, parsing and classification."""

import pytest

from spalloc._protocol import (
    BadMessage,
    LineSplitter,
    LineTooLong,
    NonFiniteNumber,
    Notification,
    Reply,
    Request,
    ServerError,
    classify,
    decode_line,
    encode_reply,
    encode_request,
    parse_request,
)


def test_splitter_handles_crlf_partial_lines_and_several_lines_per_chunk():
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\r\n{"b"') == [b'{"a":1}']
    assert splitter.buffered == 4
    assert splitter.feed(b':2}\n\n{"c":3}\n') == [b'{"b":2}', b"", b'{"c":3}']
    assert splitter.buffered == 0


def test_splitter_limits_lines_with_and_without_newline():
    splitter = LineSplitter(max_line=8)
    with pytest.raises(LineTooLong):
        splitter.feed(b"0123456789")
    assert splitter.buffered == 0
    with pytest.raises(LineTooLong):
        LineSplitter(max_line=8).feed(b"0123" + b"456789\n")


@pytest.mark.parametrize("line", [b"", b"   ", b"\r", b"\t "])
def test_blank_lines_are_skipped(line):
    assert parse_request(line) is None


def test_request_parsing_drops_client_key_and_defaults():
    assert parse_request(b'{"command":"version","kwargs":{"client":"x"},"extra":5}') == Request(
        "version", [], {}
    )
    assert parse_request(b'{"command":"get_job_state","args":[3]}') == Request(
        "get_job_state", [3], {}
    )


@pytest.mark.parametrize(
    "line",
    [
        b"{",
        b"[]",
        b'"version"',
        b"123",
        b"null",
        b"{}",
        b'{"command":123}',
        b'{"command":"version","args":"x"}',
        b'{"command":"version","kwargs":[]}',
        b'{"command":"version","args":null}',
        b'{"command":"version"} {"x":1}',
        b"\xff\xfe",
        b"[NaN]",
    ],
)
def test_malformed_requests(line):
    with pytest.raises(BadMessage) as info:
        parse_request(line)
    assert not isinstance(info.value, NonFiniteNumber)


def test_non_finite_number_in_a_well_formed_request_is_singled_out():
    with pytest.raises(NonFiniteNumber):
        parse_request(b'{"command":"create_job","args":[NaN],"kwargs":{"owner":"x"}}')
    with pytest.raises(NonFiniteNumber):
        decode_line('{"return": Infinity}')


def test_encoding():
    assert (
        encode_request("create_job", (3,), {"owner": "Jos\u00e9"})
        == b'{"command":"create_job","args":[3],"kwargs":{"owner":"Jos\\u00e9"}}\n'
    )
    assert encode_reply({"a": [1, None]}) == b'{"return": {"a": [1, null]}}\n'
    with pytest.raises(ValueError, match="non-finite"):
        encode_request("create_job", (float("nan"),))
    with pytest.raises(ValueError):
        encode_reply(float("inf"))


def test_classify():
    assert classify({"return": None}) == Reply(None)
    assert classify({"exception": None}) == ServerError("")
    note = classify({"jobs_changed": [1, 2]})
    assert isinstance(note, Notification)
    assert note.jobs_changed == [1, 2] and note.machines_changed == []
    with pytest.raises(BadMessage):
        classify([1])


# --- the client session both clients share ----------------------------------------------------


def test_client_session_pairs_replies_with_requests_in_order() -> None:
    from spalloc._protocol import ClientSession, Notification, Reply, ServerError, UnexpectedReply

    session = ClientSession()
    session.expect("first")
    session.expect("second")
    messages = session.messages(b'{"return": 1}\r\n\n{"jobs_changed": [3]}\n{"exce')
    assert messages[0] == Reply(1) and isinstance(messages[1], Notification)
    assert session.owner(messages[0]) == "first" and session.waiting == 1
    (error,) = session.messages(b'ption": "no"}\n')
    assert error == ServerError("no") and session.owner(error) == "second"
    with pytest.raises(UnexpectedReply):
        session.owner(Reply(None))
    session.expect("lost")
    assert session.abandon() == ["lost"] and session.waiting == 0


def test_a_reply_that_is_no_json_is_quoted_and_an_http_server_named() -> None:
    """What an HTTP port (or a proxy in the way) sends a v1 client says what it is."""
    from spalloc._protocol import ClientSession

    with pytest.raises(BadMessage, match=r"an HTTP server answered \('HTTP/1.1 400 Bad Request'\)"):
        ClientSession().messages(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
    with pytest.raises(BadMessage, match=r"not valid JSON.*the line began 'hello'"):
        ClientSession().messages(b"hello\n")
