"""Scripted agents: the stand-in's model plays a list of steps so the real CLI runs real tools.

A script is a list of steps (or `{"steps": [...]}`). Each step is one of

    {"tools": [{"name": "Bash", "input": {"command": "make"},
                "expect": {"contains": "ok", "notContains": "FAIL", "matches": "^ok",
                           "isError": false}}],
     "text": "optional words before the tool calls", "usage": {"inputTokens": 10}}
    {"text": "the final answer"}                      # ends the turn (stop_reason end_turn)
    {"structuredOutput": {"answer": 42}}              # the StructuredOutput tool --json-schema adds
    {"wall": {"window": "five_hour", "resetInSeconds": 3600, "credential": "alice"}}

Every step but `wall` is one model turn. The turn that answers a request is chosen by the
conversation the CLI sends, never by what the server remembers: a request whose `messages`
hold N assistant turns (the CLI's own filler not counted) is answered by the script's turn N.
So a conversation resumed on another credential (`claude --resume`, a session moved to
another account) carries on where it stopped. A `wall` is due when the conversation reaches
the turn after it: the requesting credential's window is filled (once per script) and that
request gets the real 429.

Each `tool_use` id names its step and tool (`toolu_sbx<step>_<tool>_<random>`), so every
`tool_result` the CLI sends back is checked against that tool's `expect` (by default
`isError: false`). A failed check is answered with a text that says so, and every later
request of the conversation gets the same answer: a script never passes silently.

Pure: parsing and decisions only; `server.py` applies them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

FAILURE_PREFIX = "Sandbox script check failed"
STRUCTURED_TOOL = "StructuredOutput"  # the tool the CLI (2.1.330) adds for --json-schema
# What the CLI (2.1.330) puts in as an assistant message when it resumes a conversation whose
# last turn got no answer (a run killed while a tool ran). No model said it, so it is no turn.
CLI_FILLER = "No response requested."
MAX_STEPS = 1000
MAX_RECORDED_CONTENT = 4000
TOOL_ID = re.compile(r"^toolu_sbx(\d+)_(\d+)_")


class ScriptError(ValueError):
    """A bad script document."""


@dataclass(frozen=True)
class Expectation:
    contains: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    matches: str | None = None
    is_error: bool | None = False  # None: either is fine

    def failures(self, text: str, is_error: bool) -> list[str]:
        found: list[str] = []
        if self.is_error is not None and is_error != self.is_error:
            found.append(
                f"is_error was {str(is_error).lower()}, expected {str(self.is_error).lower()}"
            )
        found += [f"does not contain {s!r}" for s in self.contains if s not in text]
        found += [f"contains {s!r}" for s in self.not_contains if s in text]
        if self.matches is not None and re.search(self.matches, text) is None:
            found.append(f"does not match /{self.matches}/")
        return found

    def view(self) -> dict[str, Any]:
        return {
            "contains": list(self.contains),
            "notContains": list(self.not_contains),
            "matches": self.matches,
            "isError": self.is_error,
        }


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    expect: Expectation = Expectation()

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "input": self.input, "expect": self.expect.view()}


@dataclass(frozen=True)
class Turn:
    """One model answer: optional text, then tool calls (a structured output is the last)."""

    text: str | None = None
    tools: tuple[ToolCall, ...] = ()
    structured: bool = False  # the last tool is the StructuredOutput call
    input_tokens: int | None = None  # reported usage, to make the CLI's cost predictable
    output_tokens: int | None = None

    @property
    def kind(self) -> str:
        if self.structured:
            return "structuredOutput"
        return "tools" if self.tools else "text"

    def view(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "tools": [t.view() for t in self.tools],
            "usage": {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens},
        }


@dataclass(frozen=True)
class Wall:
    window: str = "five_hour"
    resets_at: int | None = None
    reset_in_seconds: int = 3600
    credential: str | None = None  # only this credential's requests trigger it

    def view(self) -> dict[str, Any]:
        return {
            "kind": "wall",
            "window": self.window,
            "resetsAt": self.resets_at,
            "resetInSeconds": self.reset_in_seconds,
            "credential": self.credential,
        }


Step = Turn | Wall


@dataclass(frozen=True)
class Script:
    steps: tuple[Step, ...]

    @property
    def turn_steps(self) -> list[int]:
        """The index in `steps` of each model turn, in order."""
        return [i for i, step in enumerate(self.steps) if isinstance(step, Turn)]

    def view(self) -> dict[str, Any]:
        return {"steps": [step.view() for step in self.steps]}


# ---- parsing -------------------------------------------------------------------------------


def parse_script(doc: Any) -> Script:
    steps = doc.get("steps") if isinstance(doc, Mapping) else doc
    if isinstance(doc, Mapping) and set(doc) - {"steps"}:
        raise ScriptError(f"a script takes only steps, not {_keys(set(doc) - {'steps'})}")
    if not isinstance(steps, list) or not steps:
        raise ScriptError("a script is a non-empty list of steps (or {steps: [...]})")
    if len(steps) > MAX_STEPS:
        raise ScriptError(f"a script has at most {MAX_STEPS} steps")
    return Script(tuple(_parse_step(step, n) for n, step in enumerate(steps)))


def _parse_step(doc: Any, n: int) -> Step:
    if not isinstance(doc, Mapping):
        raise ScriptError(f"step {n} must be an object")
    if "wall" in doc:
        _only(doc, {"wall"}, f"step {n}")
        return _parse_wall(doc["wall"], n)
    _only(doc, {"text", "tools", "structuredOutput", "usage"}, f"step {n}")
    text = doc.get("text")
    if text is not None and not isinstance(text, str):
        raise ScriptError(f"step {n}: text must be a string")
    raw_tools = doc.get("tools", [])
    if not isinstance(raw_tools, list):
        raise ScriptError(f"step {n}: tools must be a list")
    tools = [_parse_tool(t, f"step {n} tool {k}") for k, t in enumerate(raw_tools)]
    structured = "structuredOutput" in doc
    if structured:
        output = doc["structuredOutput"]
        if not isinstance(output, dict):
            raise ScriptError(f"step {n}: structuredOutput must be an object (the schema's root)")
        tools.append(ToolCall(STRUCTURED_TOOL, output))
    if not tools and text is None:
        raise ScriptError(f"step {n} needs text, tools, structuredOutput or wall")
    input_tokens, output_tokens = _parse_usage(doc.get("usage"), n)
    return Turn(text, tuple(tools), structured, input_tokens, output_tokens)


def _parse_tool(doc: Any, where: str) -> ToolCall:
    if not isinstance(doc, Mapping):
        raise ScriptError(f"{where} must be an object")
    _only(doc, {"name", "input", "expect"}, where)
    name, tool_input = doc.get("name"), doc.get("input", {})
    if not isinstance(name, str) or not name:
        raise ScriptError(f"{where} needs a name (Bash, Write, mcp__server__tool, ...)")
    if not isinstance(tool_input, dict):
        raise ScriptError(f"{where}: input must be an object")
    return ToolCall(name, tool_input, _parse_expect(doc.get("expect", {}), where))


def _parse_expect(doc: Any, where: str) -> Expectation:
    if not isinstance(doc, Mapping):
        raise ScriptError(f"{where}: expect must be an object")
    # An unknown key would be a check that silently never runs, so it is refused.
    _only(doc, {"contains", "notContains", "matches", "isError", "is_error"}, f"{where} expect")
    is_error = doc.get("isError", doc.get("is_error", False))
    if is_error is not None and not isinstance(is_error, bool):
        raise ScriptError(f"{where}: expect.isError must be true, false or null")
    matches = doc.get("matches")
    if matches is not None:
        try:
            re.compile(str(matches))
        except re.error as exc:
            raise ScriptError(f"{where}: expect.matches is not a regex: {exc}") from None
    return Expectation(
        contains=_strings(doc.get("contains"), f"{where}: expect.contains"),
        not_contains=_strings(doc.get("notContains"), f"{where}: expect.notContains"),
        matches=None if matches is None else str(matches),
        is_error=is_error,
    )


def _parse_wall(doc: Any, n: int) -> Wall:
    if doc is True or doc is None:
        return Wall()
    if not isinstance(doc, Mapping):
        raise ScriptError(f"step {n}: wall must be true or an object")
    _only(doc, {"window", "resetsAt", "resetInSeconds", "credential"}, f"step {n} wall")
    window, credential = doc.get("window", "five_hour"), doc.get("credential")
    if not isinstance(window, str) or not window:
        raise ScriptError(f"step {n}: wall.window must be a window name")
    if credential is not None and not isinstance(credential, str):
        raise ScriptError(f"step {n}: wall.credential must be a credential name")
    return Wall(
        window=window,
        resets_at=_count(doc.get("resetsAt"), f"step {n}: wall.resetsAt"),
        reset_in_seconds=_count(doc.get("resetInSeconds", 3600), f"step {n}: wall.resetInSeconds")
        or 3600,
        credential=credential,
    )


def _parse_usage(doc: Any, n: int) -> tuple[int | None, int | None]:
    if doc is None:
        return None, None
    if not isinstance(doc, Mapping):
        raise ScriptError(f"step {n}: usage must be an object")
    _only(doc, {"inputTokens", "outputTokens"}, f"step {n} usage")
    return (
        _count(doc.get("inputTokens"), f"step {n}: usage.inputTokens"),
        _count(doc.get("outputTokens"), f"step {n}: usage.outputTokens"),
    )


def _only(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise ScriptError(f"{where}: unknown {_keys(unknown)} (allowed: {_keys(allowed)})")


def _keys(keys: set[str]) -> str:
    return ", ".join(sorted(str(k) for k in keys))


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ScriptError(f"{what} must be a string or a list of strings")


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ScriptError(f"{what} must be a number >= 0")
    return int(value)


# ---- playing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One tool_result the CLI sent back, held against its tool's expectation."""

    step: int
    index: int
    tool: str
    tool_use_id: str
    is_error: bool
    content: str
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def view(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "index": self.index,
            "tool": self.tool,
            "toolUseId": self.tool_use_id,
            "isError": self.is_error,
            "content": self.content[:MAX_RECORDED_CONTENT],
            "ok": self.ok,
            "failures": list(self.failures),
        }


@dataclass(frozen=True)
class Play:
    """What a script does with one request: which turn answers, which walls are due, and how
    the tool results it carries fared."""

    source: str  # "session" or "credential": where the script came from
    turn: int  # assistant turns already in the conversation
    step: int | None  # the step that answers; None once the script is used up
    walls: tuple[int, ...]  # wall steps due before this turn
    checks: tuple[Check, ...]
    failure: str | None  # answer this text instead of the step
    kind: str | None = None  # the answering step's kind: text, tools, structuredOutput
    blocks: tuple[dict[str, Any], ...] = ()  # the answer; empty: the stand-in's usual reply
    input_tokens: int | None = None  # usage to report instead of the measured one
    output_tokens: int | None = None

    def view(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "turn": self.turn,
            "step": self.step,
            "kind": "failure" if self.failure is not None else self.kind,
            "exhausted": self.step is None,
            "walls": list(self.walls),
            "failed": self.failure is not None,
            "failure": self.failure,
        }


def play(script: Script, source: str, body: Mapping[str, Any]) -> Play:
    messages = body.get("messages")
    messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    turn = sum(1 for m in messages if _is_turn(m))
    turn_steps = script.turn_steps
    step = turn_steps[turn] if turn < len(turn_steps) else None
    checks = tuple(check_results(script, messages))
    walls = due_walls(script, turn)
    failure = _failure(script, messages, checks, step, body)
    played = Play(source, turn, step, walls, checks, failure)
    if failure is not None:
        return replace(played, blocks=({"type": "text", "text": failure},))
    if step is None:
        return played
    answer = script.steps[step]
    assert isinstance(answer, Turn)
    return replace(
        played,
        kind=answer.kind,
        blocks=tuple(answer_blocks(script, step)),
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
    )


def due_walls(script: Script, turn: int) -> tuple[int, ...]:
    """The walls between the turn before `turn` and `turn` itself (after the last turn for a
    conversation that used the whole script up)."""
    turn_steps = script.turn_steps
    if turn > len(turn_steps):
        return ()
    after = turn_steps[turn - 1] if turn > 0 else -1
    until = turn_steps[turn] if turn < len(turn_steps) else len(script.steps)
    return tuple(i for i in range(after + 1, until) if isinstance(script.steps[i], Wall))


def check_results(script: Script, messages: Sequence[dict[str, Any]]) -> list[Check]:
    """Check the tool results sent since the last assistant turn (the new ones; after a wall
    they come again, merged with the resume prompt, and are checked again)."""
    last = max((i for i, m in enumerate(messages) if _is_turn(m)), default=-1)
    if last < 0:
        return []
    asked = [_own_id(b) for b in _blocks(messages[last]) if b.get("type") == "tool_use"]
    results = {
        str(b.get("tool_use_id")): b
        for m in messages[last + 1 :]
        if m.get("role") == "user"
        for b in _blocks(m)
        if b.get("type") == "tool_result"
    }
    checks: list[Check] = []
    for tool_use_id, step, index in (a for a in asked if a is not None):
        call = _call(script, step, index)
        if call is None:
            continue
        block = results.get(tool_use_id)
        if block is None:
            checks.append(
                Check(step, index, call.name, tool_use_id, False, "", ("no tool_result came back",))
            )
            continue
        text, is_error = result_text(block.get("content")), bool(block.get("is_error", False))
        failures = tuple(call.expect.failures(text, is_error))
        checks.append(Check(step, index, call.name, tool_use_id, is_error, text, failures))
    return checks


def answer_blocks(script: Script, step: int) -> list[dict[str, Any]]:
    """The content blocks of a turn; each tool_use id names its step and tool."""
    turn = script.steps[step]
    assert isinstance(turn, Turn)
    blocks: list[dict[str, Any]] = []
    if turn.text is not None:
        blocks.append({"type": "text", "text": turn.text})
    for index, call in enumerate(turn.tools):
        tool_id = f"toolu_sbx{step}_{index}_{uuid.uuid4().hex[:16]}"
        blocks.append({"type": "tool_use", "id": tool_id, "name": call.name, "input": call.input})
    return blocks


def failure_text(checks: Sequence[Check]) -> str:
    problems = "; ".join(
        f"step {c.step} {c.tool} #{c.index}: {', '.join(c.failures)} (result: "
        f"{json.dumps(c.content[:200])})"
        for c in checks
        if not c.ok
    )
    return f"{FAILURE_PREFIX}: {problems}"


def result_text(content: Any) -> str:
    """A tool_result's text: a string, or the text blocks of a list, joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(str(b.get("text", "")) for b in texts)
    return ""


def _failure(
    script: Script,
    messages: Sequence[dict[str, Any]],
    checks: Sequence[Check],
    step: int | None,
    body: Mapping[str, Any],
) -> str | None:
    if any(not c.ok for c in checks):
        return failure_text(checks)
    earlier = [t for m in messages if m.get("role") == "assistant" for t in _failures_said(m)]
    if earlier:
        # Position comes from the conversation, and this one already went wrong: say it
        # again, so the run's final answer names what failed.
        return earlier[0]
    turn = script.steps[step] if step is not None else None
    if isinstance(turn, Turn) and turn.structured and STRUCTURED_TOOL not in _tool_names(body):
        return (
            f"{FAILURE_PREFIX}: step {step} answers with structured output, but the CLI offered "
            f"no {STRUCTURED_TOOL} tool (was --json-schema given?)"
        )
    return None


def _is_turn(message: Mapping[str, Any]) -> bool:
    """An assistant message a model answered (the CLI's own filler is not one)."""
    if message.get("role") != "assistant":
        return False
    blocks = _blocks(message)
    return not (len(blocks) == 1 and blocks[0].get("text") == CLI_FILLER)


def _failures_said(message: Mapping[str, Any]) -> list[str]:
    texts = [str(b.get("text", "")) for b in _blocks(message) if b.get("type") == "text"]
    return [t for t in texts if t.startswith(FAILURE_PREFIX)]


def _tool_names(body: Mapping[str, Any]) -> set[str]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return set()
    return {str(t.get("name")) for t in tools if isinstance(t, dict)}


def _own_id(block: Mapping[str, Any]) -> tuple[str, int, int] | None:
    tool_id = str(block.get("id", ""))
    found = TOOL_ID.match(tool_id)
    return (tool_id, int(found[1]), int(found[2])) if found else None


def _call(script: Script, step: int, index: int) -> ToolCall | None:
    turn = script.steps[step] if step < len(script.steps) else None
    if isinstance(turn, Turn) and index < len(turn.tools):
        return turn.tools[index]
    return None


def first_user_text(body: Mapping[str, Any]) -> str:
    """The task: the text of the conversation's first user message (on every resume too,
    since the CLI sends the whole history)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            return "".join(
                str(b.get("text", "")) for b in _blocks(message) if b.get("type") == "text"
            )
    return ""


def _blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


@dataclass
class Scripts:
    """Scripts given per Claude Code session id (admin API), and the walls already fired.

    Walls fire once per script: after the move, the same conversation reaches the same wall
    on the new credential and must go through."""

    sessions: dict[str, Script] = field(default_factory=dict)
    # word -> script for every conversation whose task (first user message) contains it:
    # a demo can give a session its script before the operator has chosen its id.
    prompts: dict[str, Script] = field(default_factory=dict)
    fired: set[tuple[str, int]] = field(default_factory=set)

    def set_session(self, session: str, script: Script) -> None:
        key = session.lower()
        self.sessions[key] = script
        self.forget(f"session:{key}")

    def set_prompt(self, word: str, script: Script) -> None:
        self.prompts[word] = script
        self.fired = {f for f in self.fired if not f[0].startswith(f"prompt:{word}:")}

    def for_prompt(self, task: str) -> tuple[str, Script] | None:
        for word, script in self.prompts.items():
            if word in task:
                return f"prompt:{word}", script
        return None

    def forget(self, key: str) -> None:
        self.fired = {f for f in self.fired if f[0] != key}
