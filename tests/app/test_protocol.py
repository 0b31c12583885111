"""The control protocol on its own (`legsleeve.app.protocol`): what is a request and what is not. Everything refused
here is answered by the I/O thread and never reaches the loop."""

from __future__ import annotations

import json

import pytest

from legsleeve.app import protocol
from legsleeve.app.protocol import Command, ProtocolError, parse


def J(**obj) -> str:
    return json.dumps({"v": 1, **obj})


@pytest.mark.parametrize(
    "line, cmd, args",
    [
        (J(cmd="status"), "status", {}),
        (J(cmd="hello"), "hello", {}),
        (J(cmd="start"), "start", {}),
        (J(cmd="start", profile="wave", intensity_pct=80, minutes=15), "start", {"profile": "wave",
                                                                                 "intensity_pct": 80, "minutes": 15}),
        (J(cmd="start", intensity_pct=112.5), "start", {"intensity_pct": 112.5}),
        (J(cmd="stop"), "stop", {}),
        (J(cmd="reset"), "reset", {}),
        (J(cmd="silence"), "silence", {}),
        (J(cmd="history", limit=5), "history", {"limit": 5}),
        (J(cmd="subscribe", hz=2), "subscribe", {"hz": 2}),
        ("status", "status", {}),
        ("  start wave  ", "start", {"profile": "wave"}),
        ("stop", "stop", {}),
        ("history", "history", {}),
    ],
)  # fmt: skip
def test_requests_of_both_forms(line, cmd, args):
    command = parse(line)
    assert (command.cmd, command.args) == (cmd, args)
    assert command.json == line.strip().startswith("{")


def test_the_id_is_echoed_and_v_added():
    command = parse(J(cmd="status", id="abc-1"))
    wire = json.loads(protocol.encode(protocol.ok("status", "idle"), command))
    assert wire == {"v": 1, "id": "abc-1", "ok": True, "cmd": "status", "text": "idle"}
    assert protocol.encode(protocol.ok("status", "idle; x"), parse("status")) == b"idle; x\n"


BAD = [
    ("{", "bad-request", "not valid JSON"),
    ('{"v": 1, "cmd": "status"', "bad-request", "not valid JSON"),
    ("[1, 2]", "unknown-command", "unknown command '[1,'"),  # not JSON-looking: a text command
    ('{"v": 1, "cmd": "status"} trailing', "bad-request", "not valid JSON"),
    ('{"cmd": "status"}', "bad-request", '"v" (the protocol version, 1) is missing'),
    ('{"v": 2, "cmd": "status"}', "unsupported-version", "speaks version 1"),
    ('{"v": true, "cmd": "status"}', "unsupported-version", "speaks version 1"),
    ('{"v": 1}', "bad-request", '"cmd" is missing'),
    ('{"v": 1, "cmd": 7}', "bad-request", '"cmd" is missing or not a string'),
    ('{"v": 1, "cmd": "dance"}', "unknown-command", "unknown command 'dance'"),
    ('{"v": 1, "cmd": "status", "verbose": true}', "bad-request", "status has no field 'verbose' (its fields: none)"),
    ('{"v": 1, "cmd": "start", "intensity": 80}', "bad-request", "start has no field 'intensity'"),
    ('{"v": 1, "cmd": "start", "intensity_pct": "80"}', "bad-request", "intensity_pct must be a number"),
    ('{"v": 1, "cmd": "start", "intensity_pct": true}', "bad-request", "intensity_pct must be a number"),
    ('{"v": 1, "cmd": "start", "intensity_pct": 151}', "out-of-range", "intensity_pct must be from 50 to 150"),
    ('{"v": 1, "cmd": "start", "intensity_pct": 1e999}', "out-of-range", "intensity_pct must be from 50 to 150"),
    ('{"v": 1, "cmd": "start", "intensity_pct": NaN}', "bad-request", "not valid JSON"),
    ('{"v": 1, "cmd": "start", "minutes": -Infinity}', "bad-request", "not valid JSON"),
    ('{"v": 1, "cmd": "start", "minutes": 0}', "out-of-range", "minutes must be from 0.1 to 1440"),
    ('{"v": 1, "cmd": "start", "profile": "../../etc/passwd"}', "bad-request", "profile must be a profile's name"),
    ('{"v": 1, "cmd": "start", "profile": ["wave"]}', "bad-request", "profile must be a profile's name"),
    ('{"v": 1, "cmd": "history", "limit": 2.5}', "bad-request", "limit must be a whole number"),
    ('{"v": 1, "cmd": "history", "limit": 1000}', "out-of-range", "limit must be from 1 to 100"),
    ('{"v": 1, "cmd": "subscribe", "hz": 1000}', "out-of-range", "hz must be from 0.5 to 10"),
    ('{"v": 1, "cmd": "status", "id": {"a": 1}}', "bad-request", "id must be a string"),
    ('{"v": 1, "cmd": "status", "id": "' + "x" * 65 + '"}', "bad-request", "id must be a string"),
    ("{" + '"a":' * 300 + "1" + "}" * 300, "bad-request", "not valid JSON"),  # nested deeper than it is long
    ('{"v": 1, "cmd": "status", "v": 2}', "unsupported-version", "speaks version 1"),  # the last key wins, as JSON's
    ("", "bad-request", "empty command"),
    ("dance", "unknown-command", "unknown command 'dance'"),
    ("start wave now", "bad-request", "too many words for start"),
    ("stop now", "bad-request", "too many words for stop"),
    ("subscribe", "bad-request", "subscribe is JSON only"),
    ("start ../x", "bad-request", "profile must be a profile's name"),
    ("\ufffd\ufffd", "unknown-command", "unknown command"),  # bytes that were not UTF-8, replaced
]


@pytest.mark.parametrize("line, code, words", BAD)
def test_what_is_not_a_request_is_refused_with_a_code_and_words(line, code, words):
    with pytest.raises(ProtocolError) as err:
        parse(line)
    assert err.value.code == code and code in protocol.ERRORS
    assert words in err.value.text and err.value.text.startswith("error: ")


def test_nesting_deeper_than_the_interpreter_recurses_is_a_bad_request_not_a_crash():
    """The socket never passes a line this long (MAX_LINE); the parser holds on its own all the same."""
    with pytest.raises(ProtocolError) as err:
        parse('{"a":' + "[" * 100_000 + "]" * 100_000 + "}")
    assert err.value.code == "bad-request"


def test_a_profile_name_with_a_trailing_newline_is_refused():
    """`re.match` with `$` matches before a final newline: the name must be the whole string."""
    assert parse('{"v": 1, "cmd": "start", "profile": "gentle"}').args["profile"] == "gentle"
    with pytest.raises(ProtocolError) as err:
        parse('{"v": 1, "cmd": "start", "profile": "gentle\\n"}')
    assert err.value.code == "bad-request"


def test_an_error_answers_in_the_form_it_was_asked():
    exc = ProtocolError("bad-request", "error: not valid JSON", 7)
    wire = json.loads(protocol.encode_error(exc, '{"v": 1, "cmd": '))
    assert wire == {"v": 1, "id": 7, "ok": False, "cmd": None, "error": "bad-request", "text": "error: not valid JSON"}
    assert protocol.encode_error(ProtocolError("unknown-command", "error: unknown command 'x'"), "x") == (
        b"error: unknown command 'x'\n"
    )


def test_every_command_is_documented():
    from tests.helpers import ROOT

    doc = (ROOT / "docs" / "control-protocol.md").read_text()
    for cmd in protocol.COMMANDS:
        assert f"### `{cmd}`" in doc, cmd
    for code in protocol.ERRORS:
        assert f"`{code}`" in doc, code


def test_a_command_in_words():
    assert str(Command("start", {"profile": "wave", "intensity_pct": 80})) == "start intensity_pct=80 profile=wave"
