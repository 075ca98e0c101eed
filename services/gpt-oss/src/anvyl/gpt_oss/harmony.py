"""Normalize gpt-oss "harmony" output into reasoning, user-visible content and tool calls.

gpt-oss writes messages such as
``<|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...``
and tool calls as
``<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>``.
Servers that run the official reasoning/tool parsers (vLLM) return clean fields; raw engines
(mlx-lm, some proxies) leak the markers. :class:`HarmonyStreamParser` turns any such text, complete
or in arbitrary small chunks, into events so that no marker ever reaches a user. When the official
``openai-harmony`` encoding can be loaded (it needs the o200k vocabulary file, fetched from the
network or ``TIKTOKEN_ENCODINGS_BASE``), complete texts are parsed with it first.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

MARKERS = (
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|call|>",
    "<|return|>",
    "<|endoftext|>",
)
_END_OF_MESSAGE = ("<|end|>", "<|call|>", "<|return|>", "<|endoftext|>")
_LONGEST_MARKER = max(len(m) for m in MARKERS)
_RECIPIENT = re.compile(r"to=([^\s<]+)")
_CHANNEL = re.compile(r"<\|channel\|>\s*([A-Za-z_]+)")
# vLLM with skip_special_tokens and no reasoning parser strips the markers but keeps the words.
_STRIPPED_MARKERS = re.compile(r"^analysis(?P<reasoning>.*?)assistantfinal(?P<content>.*)$", re.S)


def new_tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class HarmonyEvent:
    """One piece of parsed output. ``kind`` says where ``text`` belongs."""

    kind: Literal["content", "reasoning", "tool_call_start", "tool_call_arguments"]
    text: str = ""
    index: int = 0
    tool_call_id: str = ""
    name: str = ""


@dataclass
class ParsedToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class HarmonyParsed:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ParsedToolCall] = field(default_factory=list)


class HarmonyStreamParser:
    """Incremental harmony parser: ``feed`` chunks, then ``finish``; both return events.

    A chunk may end inside a marker; the possible marker prefix is held back until the next
    chunk decides it. Text without any marker passes through as content unchanged.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._in_header = False
        self._header = ""
        self._channel: str = "final"
        self._tool_index: int | None = None
        self._tool_count = 0
        self._seen_anything = False

    def feed(self, chunk: str) -> list[HarmonyEvent]:
        self._buffer += chunk
        return self._drain(final=False)

    def finish(self) -> list[HarmonyEvent]:
        events = self._drain(final=True)
        self._buffer = ""
        return events

    def _drain(self, final: bool) -> list[HarmonyEvent]:
        events: list[HarmonyEvent] = []
        while self._buffer:
            if not self._seen_anything:
                if not final and len(self._buffer) < 2 and "<|".startswith(self._buffer):
                    break
                self._seen_anything = True
                # Output that starts with a marker is a headed harmony message.
                self._in_header = self._buffer.startswith("<|")
            if self._in_header:
                end = self._buffer.find("<|message|>")
                if end < 0:
                    if final:
                        self._buffer = ""
                    break
                self._header += self._buffer[:end]
                self._buffer = self._buffer[end + len("<|message|>") :]
                events.extend(self._open_message(self._header))
                self._header = ""
                self._in_header = False
                continue
            start = self._buffer.find("<|")
            if start < 0:
                # A trailing "<" may be the first half of a marker.
                keep = 1 if not final and self._buffer.endswith("<") else 0
                events.extend(self._body(self._buffer[: len(self._buffer) - keep]))
                self._buffer = self._buffer[len(self._buffer) - keep :]
                break
            if start > 0:
                events.extend(self._body(self._buffer[:start]))
                self._buffer = self._buffer[start:]
            marker = next((m for m in MARKERS if self._buffer.startswith(m)), None)
            if marker is None:
                if len(self._buffer) < _LONGEST_MARKER and any(
                    m.startswith(self._buffer) for m in MARKERS
                ):
                    if final:  # output cut inside a marker: drop the fragment
                        self._buffer = ""
                    break  # else it may be a marker split across chunks
                events.extend(self._body("<|"))
                self._buffer = self._buffer[2:]
                continue
            self._buffer = self._buffer[len(marker) :]
            if marker in _END_OF_MESSAGE:
                self._close_message()
                self._in_header = True
            elif marker in ("<|start|>", "<|channel|>", "<|constrain|>"):
                self._close_message()
                self._in_header = True
                self._header = marker if marker != "<|start|>" else ""
            # a stray <|message|> in a body carries no text of its own
        return events

    def _open_message(self, header: str) -> list[HarmonyEvent]:
        channel_match = _CHANNEL.search(header)
        recipient_match = _RECIPIENT.search(header)
        self._channel = channel_match.group(1) if channel_match else "final"
        if recipient_match:
            recipient = recipient_match.group(1)
            name = recipient.removeprefix("functions.")
            self._tool_index = self._tool_count
            self._tool_count += 1
            return [
                HarmonyEvent(
                    "tool_call_start",
                    index=self._tool_index,
                    tool_call_id=new_tool_call_id(),
                    name=name,
                )
            ]
        self._tool_index = None
        return []

    def _close_message(self) -> None:
        self._tool_index = None
        self._channel = "final"

    def _body(self, text: str) -> list[HarmonyEvent]:
        if not text:
            return []
        if self._tool_index is not None:
            return [HarmonyEvent("tool_call_arguments", text=text, index=self._tool_index)]
        if self._channel == "analysis":
            return [HarmonyEvent("reasoning", text=text)]
        return [HarmonyEvent("content", text=text)]


def collect(events: list[HarmonyEvent], into: HarmonyParsed | None = None) -> HarmonyParsed:
    parsed = into or HarmonyParsed()
    for event in events:
        if event.kind == "content":
            parsed.content += event.text
        elif event.kind == "reasoning":
            parsed.reasoning += event.text
        elif event.kind == "tool_call_start":
            parsed.tool_calls.append(ParsedToolCall(event.tool_call_id, event.name, ""))
        else:
            parsed.tool_calls[event.index].arguments += event.text
    return parsed


def contains_harmony(text: str) -> bool:
    return "<|" in text and any(marker in text for marker in MARKERS)


def parse_harmony_text(text: str) -> HarmonyParsed:
    """Parse a complete completion text (harmony or plain) into its parts."""
    if not contains_harmony(text):
        stripped = _STRIPPED_MARKERS.match(text)
        if stripped:
            return HarmonyParsed(
                content=stripped.group("content"), reasoning=stripped.group("reasoning")
            )
        return HarmonyParsed(content=text)
    official = _parse_with_official_encoding(text)
    if official is not None:
        return official
    parser = HarmonyStreamParser()
    return collect(parser.feed(text) + parser.finish())


@functools.cache
def _official_encoding() -> Any | None:
    try:
        from openai_harmony import HarmonyEncodingName, load_harmony_encoding

        return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    except Exception:  # the vocabulary is not available offline; the text parser covers it
        return None


def _parse_with_official_encoding(text: str) -> HarmonyParsed | None:
    encoding = _official_encoding()
    if encoding is None:
        return None
    try:
        from openai_harmony import Role

        body = text
        # The parser expects completion tokens that follow "<|start|>assistant".
        if body.startswith("<|start|>assistant"):
            body = body[len("<|start|>assistant") :]
        tokens = encoding.encode(body, allowed_special="all")
        messages = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    except Exception:  # partial or malformed text: the tolerant parser handles it
        return None
    parsed = HarmonyParsed()
    for message in messages:
        message_text = "".join(getattr(part, "text", "") for part in message.content)
        recipient = message.recipient or ""
        if recipient:
            name = recipient.removeprefix("functions.")
            parsed.tool_calls.append(ParsedToolCall(new_tool_call_id(), name, message_text))
        elif message.channel == "analysis":
            parsed.reasoning += message_text
        else:
            parsed.content += message_text
    return parsed
