"""Harmony output turned into reasoning, content and tool calls, complete and in small chunks."""

from __future__ import annotations

import json

import pytest

from anvyl.gpt_oss.harmony import (
    MARKERS,
    HarmonyParsed,
    HarmonyStreamParser,
    collect,
    parse_harmony_text,
)

REASONING_AND_ANSWER = (
    "<|channel|>analysis<|message|>The user wants a greeting. Keep it short.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>"
)
TOOL_CALL = (
    "<|channel|>analysis<|message|>Need to list files first.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.list_files <|constrain|>json"
    '<|message|>{"path": "src", "depth": 2}<|call|>'
)
TWO_TOOL_CALLS = (
    "<|channel|>commentary to=functions.git_status <|constrain|>json<|message|>{}<|call|>"
    "<|start|>assistant to=functions.read_file<|channel|>commentary json"
    '<|message|>{"path": "README.md"}<|call|>'
)


def _no_markers(parsed: HarmonyParsed) -> None:
    for text in [parsed.content, parsed.reasoning, *[c.arguments for c in parsed.tool_calls]]:
        assert "<|" not in text and not any(marker in text for marker in MARKERS)


def _streamed(text: str, size: int) -> HarmonyParsed:
    parser = HarmonyStreamParser()
    events = []
    for start in range(0, len(text), size):
        events += parser.feed(text[start : start + size])
    return collect(events + parser.finish())


def test_reasoning_and_final_answer() -> None:
    parsed = parse_harmony_text(REASONING_AND_ANSWER)
    assert parsed.reasoning == "The user wants a greeting. Keep it short."
    assert parsed.content == "Hello! How can I help?"
    assert parsed.tool_calls == []


def test_commentary_tool_call() -> None:
    parsed = parse_harmony_text(TOOL_CALL)
    assert parsed.reasoning == "Need to list files first."
    assert parsed.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("list_files", {"path": "src", "depth": 2})
    ]
    assert parsed.tool_calls[0].id.startswith("call_")


def test_two_tool_calls_recipient_before_or_after_channel() -> None:
    parsed = parse_harmony_text(TWO_TOOL_CALLS)
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("git_status", {}),
        ("read_file", {"path": "README.md"}),
    ]
    assert len({c.id for c in parsed.tool_calls}) == 2


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
@pytest.mark.parametrize("text", [REASONING_AND_ANSWER, TOOL_CALL, TWO_TOOL_CALLS])
def test_streamed_in_small_chunks_equals_complete_parse(text: str, size: int) -> None:
    whole = parse_harmony_text(text)
    streamed = _streamed(text, size)
    _no_markers(streamed)
    assert (streamed.content, streamed.reasoning) == (whole.content, whole.reasoning)
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in whole.tool_calls
    ]


def test_plain_text_passes_through_unchanged_even_with_lookalikes() -> None:
    text = "Use a < b and x |> y; also '<|' alone is fine."
    assert parse_harmony_text(text).content == text
    assert _streamed(text, 2).content == text


def test_partial_text_cut_inside_a_marker_leaks_nothing() -> None:
    parser = HarmonyStreamParser()
    events = parser.feed("<|channel|>final<|message|>Hi there<|e")
    parsed = collect(events)
    assert parsed.content == "Hi there"
    parsed = collect(parser.finish(), parsed)
    _no_markers(parsed)


def test_stripped_markers_from_servers_that_skip_special_tokens() -> None:
    parsed = parse_harmony_text("analysisUser says hi.assistantfinalHi!")
    assert (parsed.reasoning, parsed.content) == ("User says hi.", "Hi!")
