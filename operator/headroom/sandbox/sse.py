"""The Messages API reply, as one JSON message or as the server-sent-event stream the CLI reads
(message_start, content_block_start/delta/stop, message_delta with usage, message_stop)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    message_id: str = ""

    @classmethod
    def create(cls, model: str, text: str, input_tokens: int) -> Reply:
        return cls(
            model=model,
            text=text,
            input_tokens=input_tokens,
            output_tokens=max(1, len(text.split())),
            message_id="msg_" + uuid.uuid4().hex[:24],
        )


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
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage(reply.input_tokens, reply.output_tokens),
    }


def events(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The streamed answer, event by event. Ending with `end_turn` makes a one-turn run of the
    CLI finish at once."""
    start = {**message(reply), "content": [], "stop_reason": None}
    start["usage"] = usage(reply.input_tokens, 1)
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": reply.text},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def encode(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """Anthropic's error envelope."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
