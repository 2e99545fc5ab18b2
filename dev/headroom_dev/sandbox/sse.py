"""The Messages API reply, as one JSON message or as the server-sent-event stream the CLI reads
(message_start, content_block_start/delta/stop, message_delta with usage, message_stop)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

JSON_CHUNK = 48  # input_json_delta pieces: the CLI must put the tool input back together


@dataclass(frozen=True)
class Reply:
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    message_id: str = ""
    # The content blocks (text and tool_use); a text-only reply when empty.
    blocks: tuple[dict[str, Any], ...] = ()
    stop_reason: str = "end_turn"

    @classmethod
    def create(cls, model: str, text: str, input_tokens: int) -> Reply:
        return cls.from_blocks(model, [{"type": "text", "text": text}], input_tokens)

    @classmethod
    def from_blocks(
        cls,
        model: str,
        blocks: list[dict[str, Any]],
        input_tokens: int,
        output_tokens: int | None = None,
    ) -> Reply:
        """A reply of text and tool_use blocks. Tool calls end the turn with `tool_use`, as
        the real API does, so the CLI runs them and sends the results back."""
        text = "".join(str(b.get("text", "")) for b in blocks if b["type"] == "text")
        tool_bytes = sum(len(json.dumps(b["input"])) for b in blocks if b["type"] == "tool_use")
        estimate = max(1, len(text.split()) + tool_bytes // 4)
        return cls(
            model=model,
            text=text,
            input_tokens=input_tokens,
            output_tokens=estimate if output_tokens is None else output_tokens,
            message_id="msg_" + uuid.uuid4().hex[:24],
            blocks=tuple(blocks),
            stop_reason="tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        )

    @property
    def content(self) -> list[dict[str, Any]]:
        return list(self.blocks) or [{"type": "text", "text": self.text}]


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message(reply: Reply) -> dict[str, Any]:
    """The non-streaming answer."""
    return {
        "id": reply.message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": usage(reply.input_tokens, reply.output_tokens),
    }


def events(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The streamed answer, event by event. Ending with `end_turn` makes a one-turn run of the
    CLI finish at once; `tool_use` makes it run the tools and ask again."""
    start = {**message(reply), "content": [], "stop_reason": None}
    start["usage"] = usage(reply.input_tokens, 1)
    blocks = [e for index, b in enumerate(reply.content) for e in _block_events(index, b)]
    return [
        ("message_start", {"type": "message_start", "message": start}),
        blocks[0],
        ("ping", {"type": "ping"}),  # where the real API sends it: after the first block starts
        *blocks[1:],
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A text block streams as one text_delta; a tool_use block starts with an empty input
    and streams its JSON in pieces (input_json_delta), as the real API does."""
    if block["type"] == "tool_use":
        opening = {**block, "input": {}}
        raw = json.dumps(block["input"], separators=(",", ":"))
        pieces = [""] + [raw[i : i + JSON_CHUNK] for i in range(0, len(raw), JSON_CHUNK)]
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": block.get("text", "")}]
    return [
        ("content_block_start",
         {"type": "content_block_start", "index": index, "content_block": opening}),
        *(("content_block_delta",
           {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]  # fmt: skip


def encode(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """Anthropic's error envelope."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
