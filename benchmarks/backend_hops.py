"""How many of Taleloom's own functions one backend call passes through on its way from a stage to the
model: the service's path (the job workers' shared backends), the LLM a runner asks for, as the first
call (which creates the backend) and as every later call. Counted with `sys.setprofile`: each Python
call in a file under taleloom/ between the runner's call and the backend's `chat` is one hop.

    PYTHONPATH=src python benchmarks/backend_hops.py [--out benchmarks/results/backend_hops.json]

It runs against older trees too (it only uses names they share), so before/after figures come from the
same script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from taleloom import orchestrator
from taleloom.backends import registry
from taleloom.backends.base import TextModel
from taleloom.book import Brief, Storybook
from taleloom.config import Settings
from taleloom.server.limits import service_backends


class Echo(TextModel):
    name = "echo"
    model_id = "echo"

    def __init__(self, location=None, model=None, **options):
        pass

    def chat(self, messages, sampling=None, schema=None) -> str:
        return "ok"


def hops(call) -> list[str]:
    """The taleloom functions entered while `call()` runs, up to the backend's chat."""
    seen: list[str] = []
    done = [False]

    def profile(frame, event, arg):
        if event != "call" or done[0]:
            return
        code = frame.f_code
        if code is Echo.chat.__code__:
            done[0] = True
            return
        if "/taleloom/" in code.co_filename.replace("\\", "/"):
            seen.append(f"{Path(code.co_filename).stem}.{code.co_qualname}")

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    args = ap.parse_args()
    registry.available()  # the entry points are read once per process: not a hop of any call
    registry.register("llm", "hops-echo", Echo)
    with tempfile.TemporaryDirectory() as tmp:
        backends = service_backends(Settings(llm="hops-echo", data_dir=Path(tmp)), None)
        run = orchestrator._Run(Path(tmp), Storybook(id="hops", brief=Brief()), backends, None)
        message = [{"role": "user", "content": "hi"}]
        first = hops(lambda: run.backend("llm").chat(message))
        later = hops(lambda: run.backend("llm").chat(message))
    result = {"first_call": len(first), "later_call": len(later), "first_path": first, "later_path": later}
    print("| call | hops | path |\n|---|---|---|")
    print(f"| first (creates the backend) | {len(first)} | {' → '.join(first)} |")
    print(f"| later | {len(later)} | {' → '.join(later)} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
