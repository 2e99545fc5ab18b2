"""Fuzz the event-stream parser: malformed, truncated and huge lines never crash it, never
invent a wall, and a stream without a usable result ends as `failed` with a valid message."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.contract.termination import MAX_BYTES, Outcome, parse
from headroom.runner.report import message_for, render
from headroom.runner.stream import LineSplitter, StreamClassifier, classify

DATA = Path(__file__).resolve().parent / "data"
REAL_LINES = [
    line for path in sorted(DATA.glob("*.jsonl")) for line in path.read_text().splitlines()
]
SESSION = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"

truncated_real_line = st.sampled_from(REAL_LINES).flatmap(
    lambda line: st.integers(0, max(0, len(line) - 1)).map(lambda n: line[:n])
)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["system", "rate_limit_event", "assistant", "user", "junk"])},
    optional={
        "subtype": st.sampled_from(["init", "api_retry", "success"]) | st.text(max_size=8),
        "rate_limit_info": json_value,
        "error": json_value,
        "error_status": json_value,
        "session_id": json_value,
        "api_error_params": json_value,
    },
).map(json.dumps)
garbage = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    truncated_real_line,
    event_like,
    st.just("[" * 5000),  # deeper than json's recursion limit
    st.just('{"type":"result","is_error":false,"subtype":"success"'),  # cut before the brace
    st.integers(1, 3).map(lambda mb: "x" * (mb * 1024 * 1024)),  # huge
    st.just('{"type":"result","result":"' + "y" * 2_000_000 + '"'),  # huge and cut
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(garbage, max_size=12), st.none() | st.integers(-20, 255))
def test_garbage_streams_end_as_failed_with_a_valid_message(
    lines: list[str | bytes], exit_code: int | None
) -> None:
    verdict = classify(lines, exit_code)

    assert verdict.outcome in {Outcome.FAILED, Outcome.AUTH_FAILED, Outcome.THROTTLED}
    if not any("api_retry" in str(line) or "rate_limit" in str(line) for line in lines):
        assert verdict.outcome is Outcome.FAILED
    assert verdict.window is None
    text = render(message_for(verdict, SESSION, False, ["sk-ant-oat01-fuzz-secret"]))
    assert len(text.encode()) < MAX_BYTES
    assert parse(text).message is not None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(REAL_LINES) | garbage, max_size=10))
def test_any_mix_of_real_and_broken_lines_yields_a_schema_valid_message(
    lines: list[str | bytes],
) -> None:
    classifier = StreamClassifier()
    for line in lines:
        classifier.feed(line)
    verdict = classifier.verdict(exit_code=1)
    if verdict.outcome is Outcome.WALLED:
        # Only a real signal can wall: a rejected event with a reset, or one of the credit
        # signals the CLI printed (a rejected usage-credit lane, credits_required, or the
        # billing_error of a spent API balance).
        signals = ('"status":"rejected","resetsAt"', '"overageStatus":"rejected"',
                   '"errorCode":"credits_required"', '"error":"billing_error"')  # fmt: skip
        assert any(s in str(line) for line in lines for s in signals)
    parsed = parse(render(message_for(verdict, SESSION, True, [])))
    assert parsed.message is not None, parsed.problem


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b), max_size=12),
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
)
def test_line_splitter_output_does_not_depend_on_chunking(
    lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    splitter = LineSplitter(limit=32)
    out: list[tuple[bytes, bool]] = []
    position = 0
    for size in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        out += splitter.feed(stream[position : position + size])
        position += size
    out += splitter.feed(stream[position:]) + splitter.flush()
    assert out == [(line[:32], len(line) > 32) for line in lines]


def test_a_line_beyond_the_limit_is_counted_not_parsed() -> None:
    huge = '{"type":"result","is_error":false,"subtype":"success","result":"' + "z" * (9 << 20)
    huge += '"}'
    classifier = StreamClassifier()
    assert classifier.feed(huge) is False
    verdict = classifier.verdict(exit_code=0)
    assert verdict.outcome is Outcome.FAILED
    assert classifier.oversized == 1 and "1 oversized" in verdict.detail
