"""The TextModel answer interface: finish reason, token counts and stop strings, for backends that
report them (the OpenAI-compatible one over MockTransport) and for those that only write `chat`."""

from __future__ import annotations

import json

import httpx

from taleloom.backends.base import Sampling, StopCutter, TextModel, cut_at_stop
from taleloom.backends.llm.openai_compat import OpenAITextModel

URL = "http://model.test/v1"
HELLO = [{"role": "user", "content": "Say hello."}]


class Echo(TextModel):
    """A backend that only writes `chat` and `stream` (like an older plugin)."""

    name = "echo"

    def chat(self, messages, sampling=None, schema=None) -> str:
        return "one two. three END four"

    def stream(self, messages, sampling=None):
        yield from ["one two", ". three E", "ND four"]


def test_cut_at_stop_and_the_stream_cutter_agree():
    assert cut_at_stop("a.b.c", [".", "b"]) == ("a", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
    for stop in (["END"], ["three", "END"], ["zzz"], []):
        cutter = StopCutter(stop)
        streamed = "".join(cutter.feed(p) for p in ["one two", ". three E", "ND four"]) + cutter.flush()
        assert streamed == cut_at_stop("one two. three END four", stop)[0]


def test_default_answer_estimates_usage_and_applies_stop():
    a = Echo().answer(HELLO, Sampling(stop=["END"]))
    assert a.text == "one two. three " and a.finish_reason == "stop"
    assert a.usage.estimated and a.usage.completion_tokens == 4 and a.usage.prompt_tokens > 0
    pieces = list(Echo().answer_stream(HELLO, Sampling(stop=["END"])))
    assert "".join(p.text for p in pieces) == "one two. three "
    assert pieces[-1].finish_reason == "stop" and pieces[-1].usage.total_tokens == a.usage.total_tokens


def handler(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    handler.payloads.append(body)
    usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    if not body.get("stream"):
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": "a b c"},
                                                      "finish_reason": "length"}], "usage": usage})
    events = [{"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in ("a", " b", " c")]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    if body.get("stream_options", {}).get("include_usage") and handler.send_usage:
        events.append({"choices": [], "usage": usage})
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def test_openai_backend_reports_the_servers_finish_reason_and_usage():
    handler.payloads, handler.send_usage = [], True
    model = OpenAITextModel(URL, "m", transport=httpx.MockTransport(handler))
    a = model.answer(HELLO, Sampling(max_tokens=3, stop=["\n\n"]))
    assert (a.text, a.finish_reason, a.usage.prompt_tokens, a.usage.completion_tokens) == ("a b c", "length", 11, 3)
    assert handler.payloads[-1]["stop"] == ["\n\n"] and not a.usage.estimated
    pieces = list(model.answer_stream(HELLO, Sampling(max_tokens=3)))
    assert [p.text for p in pieces] == ["a", " b", " c", ""] and pieces[-1].finish_reason == "length"
    assert pieces[-1].usage.total_tokens == 14 and not pieces[-1].usage.estimated
    handler.send_usage = False  # a server that ignores include_usage: one token per content chunk
    last = list(model.answer_stream(HELLO, Sampling(max_tokens=3)))[-1]
    assert last.usage.estimated and last.usage.completion_tokens == 3


def test_a_server_that_refuses_stream_options_is_asked_without_them():
    def strict(request: httpx.Request) -> httpx.Response:
        if "stream_options" in json.loads(request.content):
            strict.refused += 1
            return httpx.Response(400, json={"error": {"message": "unknown field stream_options"}})
        return handler(request)

    handler.payloads, handler.send_usage, strict.refused = [], False, 0
    model = OpenAITextModel(URL, "m", transport=httpx.MockTransport(strict))
    for _ in range(2):
        pieces = list(model.answer_stream(HELLO, Sampling(max_tokens=3)))
        assert "".join(p.text for p in pieces) == "a b c" and pieces[-1].finish_reason == "length"
    assert strict.refused == 1  # remembered: the second stream went without them at once
