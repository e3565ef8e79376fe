"""A stand-in for the vision model's child process (llm/llama_child.py) in tests/backends/test_llava_gguf.py:
an OpenAI-compatible server on loopback (stdlib only) that writes each chat request it gets to a JSON-lines
file and answers with a caption. A hint containing "crash me" makes it die by SIGSEGV mid-request, as
native code would. Run as ``python fake_vision_child.py --port P --requests FILE [llama_child's flags]``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CAPTION = {"text": "A ginger cat sleeps on a blue sofa.", "concepts": ["cat", "sofa"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True)
    args, _ = parser.parse_known_args()

    class Handler(BaseHTTPRequestHandler):
        def _json(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._json({"object": "list", "data": [{"id": "local", "object": "model"}]})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with open(args.requests, "a") as f:
                f.write(json.dumps(body) + "\n")
            if "crash me" in json.dumps(body["messages"]):
                os.kill(os.getpid(), signal.SIGSEGV)
                time.sleep(60)  # the signal lands asynchronously: never answer meanwhile
            self._json({"id": "x", "object": "chat.completion", "model": "local",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": json.dumps(CAPTION)}}],
                        "usage": {"prompt_tokens": 600, "completion_tokens": 20, "total_tokens": 620}})

        def log_message(self, *_args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
