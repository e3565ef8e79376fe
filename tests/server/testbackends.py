"""Fast test backends for the service tests and the load benchmark — real classes implementing the
backend interfaces, never a product default. A server loads them through the plugin hook:

    TALELOOM_PLUGINS=testbackends:register  (with tests/server on PYTHONPATH)
    TALELOOM_CAPTIONER=test TALELOOM_LLM=test TALELOOM_ILLUSTRATOR=test TALELOOM_UPSCALER=test TALELOOM_NARRATOR=test

`TALELOOM_TEST_DELAY` (seconds, default 0) makes each call sleep like a model would: a captioner or
LLM call costs 1 unit, an illustrator call 4 units + 1 per picture (a fixed cost per call, so batching
pays, as on a real GPU), an upscale or a narration 0.5. The LLM answers any JSON schema with a valid instance.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import time
import wave
from typing import Any

from PIL import Image, ImageDraw

from taleloom.backends.base import (
    Answer,
    Captioner,
    Illustrator,
    Narrator,
    Piece,
    Sampling,
    TextModel,
    Upscaler,
    Usage,
    cut_at_stop,
)
from taleloom.book import Caption, ImageRequest
from taleloom.errors import BackendError

WORDS = ("Mina", "found", "a", "red", "kite", "in", "the", "park", "and", "her", "dog", "Biscuit", "ran",
         "after", "it", "under", "the", "big", "green", "tree", "while", "the", "sun", "smiled")


def _delay(units: float) -> None:
    unit = float(os.environ.get("TALELOOM_TEST_DELAY", "0") or 0)
    if unit > 0:
        time.sleep(unit * units)


def _colour(text: str) -> tuple[int, int, int]:
    d = hashlib.sha256(text.encode()).digest()
    return 60 + d[0] % 160, 60 + d[1] % 160, 60 + d[2] % 160


class SolidCaptioner(Captioner):
    name = "test"
    model_id = "test-captioner"

    def __init__(self, location=None, model=None):
        pass

    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        _delay(1)
        if hint and "crash-internally" in hint:  # lets a test see what a 500 tells the client
            raise PermissionError(13, "Permission denied", "/srv/taleloom-secret/books/b0123456789")
        r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
        text = f"A photo with mostly rgb({r},{g},{b}) colours." + (f" {hint}" if hint else "")
        return Caption(text=text, concepts=["kite", "park"], facts={"mean_rgb": [r, g, b]}, model_id=self.model_id)


def _sentence(n: int, seed: int) -> str:
    words = [WORDS[(seed + i * 7) % len(WORDS)] for i in range(n)]
    return " ".join(words).capitalize() + "."


def instance(schema: dict, name: str = "", seed: int = 0, root: dict | None = None) -> Any:
    """A small valid instance of a JSON schema (enough of it for structured-output prompts)."""
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return instance(target, name, seed, root)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], name, seed, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: instance(v, k, seed + i, root) for i, (k, v) in enumerate(props.items())}
    if kind == "array":
        lo = schema.get("minItems", 1)
        hi = schema.get("maxItems", max(lo, 1))
        n = max(lo, min(hi, 2))
        return [instance(schema.get("items", {"type": "string"}), name, seed + i, root) for i in range(n)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    lo, hi = schema.get("minLength", 1), schema.get("maxLength", 400)
    lname = name.lower()
    if "title" in lname:
        text = "Mina and the Red Kite"
    elif lname in ("name", "hero"):
        text = "Mina"
    elif "look" in lname or "scene" in lname or "prompt" in lname:
        text = "a small girl in a yellow raincoat flying a red kite in a green park"
    else:
        text = _sentence(14, seed)
    while len(text) < lo:
        text += " " + _sentence(8, seed + len(text))
    return text[:hi]


SENTENCES = (  # a small story for StoryLLM; {a}, {b}: words from the photo or idea
    "{hero} loved the {a} more than anything.",
    "One morning the wind lifted the {a} high above the {b}.",
    "{hero} ran across the {b} to follow it.",
    "A friendly duck showed {hero} the way past the pond.",
    "The {a} got stuck in the branches of an old oak tree.",
    "{hero} climbed slowly and held on tight.",
    "At last the {a} came free and floated down.",
    "Everyone in the {b} cheered and clapped.",
    "The sun was warm and the grass was soft.",
    "{hero} shared an apple with a curious squirrel.",
    "Soon the stars came out one by one.",
    "That night {hero} smiled and dreamed of the next adventure.",
)
SCENE_WORDS = ("sunny", "windy", "quiet", "golden", "misty", "bright", "green", "blue")


def _about_words(prompt: str) -> list[str]:
    from taleloom.stages import story_text as st

    m = re.search(r"The photo shows ([^.\n]+)", prompt) or re.search(r"(?:About|about): ([^\n]+)", prompt)
    found = [w for w in st.words(m.group(1) if m else "") if w.lower() not in st.STOPWORDS and len(w) > 2]
    return (found + ["kite", "park"])[:2]


class StoryLLM(TextModel):
    """A test LLM that answers the write stage's steps sensibly (plan, story, scenes, rewrite), so the
    real stage and its checks run; any other schema gets a valid instance, plain chats a sentence."""

    name = "test"
    model_id = "test-llm"
    supports_schema = True

    def __init__(self, location=None, model=None):
        self.calls = 0

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        import json

        _delay(1)
        self.calls += 1
        prompt = messages[-1]["content"]
        seed = (sampling.seed or 0) if sampling else 0
        if "explode" in prompt:  # lets a test see how the service answers a bug (a 500 without internals)
            raise RuntimeError("test LLM bug at /models/secret-llm")
        if any("unwritable" in str(m["content"]) for m in messages):  # lets a test make a book fail in write
            raise BackendError("the test LLM cannot write about 'unwritable' (/models/secret-llm)",
                               "use another idea")
        if schema is None:
            return _sentence(12, seed + len(prompt))
        props = set(schema.get("properties", {}))
        if props == {"title", "hero", "friend", "outline", "pages"}:  # the write stage's one answer: plan, pages
            plan = self._plan(schema, prompt)
            n = schema["properties"]["pages"]["minItems"]
            return json.dumps(plan | {"pages": self._pages(prompt, seed, n, plan["hero"]["name"], plan["outline"])})
        if props == {"pages"}:
            return json.dumps({"pages": self._pages(prompt, seed, schema["properties"]["pages"]["minItems"])})
        if props == {"outline", "pages"}:  # extend: new outline lines, then their pages
            n = schema["properties"]["pages"]["minItems"]
            hero = (re.search(r"new small adventure for ([A-Z][a-z]+)", prompt) or [0, "Mina"])[1]
            lines = [f"The next day, {hero} goes on adventure {i + 1}." for i in range(n)]
            return json.dumps({"outline": lines, "pages": self._pages(prompt, seed + 7, n, hero, lines)})
        if props == {"text", "scene"}:
            text = self._rewrite(prompt, seed)
            return json.dumps({"text": text, "scene": self._scene(text)})
        return json.dumps(instance(schema, seed=seed))

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        """Words count as tokens, so tests can check usage and see max_tokens cut a plain answer."""
        s = sampling or Sampling()
        text, _ = cut_at_stop(self.chat(messages, s, schema), s.stop)
        finish = "stop"
        if schema is None and len(text.split()) > s.max_tokens:
            text, finish = " ".join(text.split()[:s.max_tokens]), "length"
        prompt = sum(len(str(m["content"]).split()) for m in messages)
        return Answer(text, finish, Usage(prompt, len(text.split())))

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None):
        whole = self.answer(messages, sampling)
        for i, word in enumerate(whole.text.split()):
            yield Piece(word if i == 0 else " " + word)
        yield Piece("", whole.finish_reason, whole.usage)

    @staticmethod
    def _plan(schema: dict, prompt: str) -> dict:
        hero_name = schema["properties"]["hero"]["properties"]["name"].get("enum", ["Mina"])[0]
        n = schema["properties"]["outline"]["minItems"]
        a, b = _about_words(prompt)
        return {"title": f"{hero_name} and the {a.capitalize()}"[:50],
                "hero": {"name": hero_name, "kind": f"a child with a {a}"[:30], "look": "a yellow raincoat and red boots"},
                "friend": {"name": "Tomo" if hero_name != "Tomo" else "Lulu", "kind": "a grey kitten",
                           "look": "grey fur and a green bell"},
                "outline": [SENTENCES[i % len(SENTENCES)].format(hero=hero_name, a=a, b=b) for i in range(n)]}

    @staticmethod
    def _pages(prompt: str, seed: int, n: int, hero: str | None = None, lines: list[str] | None = None) -> list:
        """One page per outline line: the line itself and one more sentence of the small story."""
        hero = hero or (re.search(r"naming ([A-Z][a-z]+);", prompt) or [0, "Mina"])[1]
        first = int((re.search(r"Now write pages (\d+)", prompt) or [0, "1"])[1])
        lines = lines or [m for m in re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)][-n:]
        a, b = _about_words(prompt)
        pages = []
        for i in range(n):
            line = lines[i] if i < len(lines) else f"{hero} sees something new."
            k = (seed + 5 * i + 3) % len(SENTENCES)
            more = SENTENCES[k].format(hero=hero, a=a, b=b)
            if more == line:
                more = SENTENCES[(k + 1) % len(SENTENCES)].format(hero=hero, a=a, b=b)
            pages.append({"text": f"{line} {more}" if hero in line + more else f"{hero} smiled. {line} {more}",
                          "scene": StoryLLM._scene(f"{line} {first + i} {seed}")})
        return pages

    @staticmethod
    def _scene(prompt: str) -> str:
        from taleloom.stages import story_text as st

        words = [w.lower() for w in st.words(prompt) if w.lower() not in st.STOPWORDS]
        mood = SCENE_WORDS[sum(map(ord, prompt)) % len(SCENE_WORDS)]
        return f"a child in a yellow raincoat on a {mood} day, " + " ".join(dict.fromkeys(words[:7]))

    @staticmethod
    def _rewrite(prompt: str, seed: int) -> str:
        hero = re.search(r"keep ([A-Z][a-z]+) in it", prompt)
        name = hero.group(1) if hero else "The child"
        return f"{name} laughed so hard that the birds laughed too, and the day felt new (take {seed % 97})."


class SolidIllustrator(Illustrator):
    """A flat colour from the prompt and seed, with the page's seed drawn as a stripe."""

    name = "test"
    model_id = "test-illustrator"
    max_batch = 8

    def __init__(self, location=None, model=None):
        self.batches: list[int] = []

    def _draw(self, r: ImageRequest) -> Image.Image:
        w, h = r.width or 512, r.height or 512  # 512: this stand-in's native size
        img = Image.new("RGB", (w, h), _colour(f"{r.prompt}|{r.seed}"))
        ImageDraw.Draw(img).rectangle([0, h // 3, w, h // 3 + 16], fill=_colour(str(r.seed)))
        return img

    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        _delay(4 + len(requests))
        self.batches.append(len(requests))
        return [self._draw(r) for r in requests]

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        _delay(2)
        drawn = self._draw(request)
        return Image.blend(image.convert("RGB").resize(drawn.size), drawn, strength)

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        _delay(2)
        drawn = self._draw(request)
        base = image.convert("RGB").resize(drawn.size)
        return Image.composite(drawn, base, mask.convert("L").resize(base.size))


class ConceptIllustrator(SolidIllustrator):
    """Like the embedded model: draws only at its own size (32x32) and only the concepts it knows, so
    the service has to upscale and fit pictures, and map prompts onto its vocabulary."""

    name = "test-concepts"
    model_id = "test-concepts-illustrator"
    VOCABULARY = ("kite", "cat", "tree", "boat")
    draws_concepts = True

    def _draw(self, r: ImageRequest) -> Image.Image:
        return super()._draw(r.model_copy(update={"width": 32, "height": 32,
                                                  "prompt": r.concepts[0] if r.concepts else r.prompt}))

    def nearest_concepts(self, text: str, k: int = 5) -> list[str]:
        words = re.findall(r"[a-z]+", text.lower())
        return sorted(self.VOCABULARY, key=lambda c: (c not in words, self.VOCABULARY.index(c)))[:k]


class NearestUpscaler(Upscaler):
    name = "test"
    model_id = "test-upscaler"

    def __init__(self, location=None, model=None):
        pass

    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        _delay(0.5)
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


class ToneNarrator(Narrator):
    """A short sine tone per text (longer text, longer tone)."""

    name = "test"
    model_id = "test-narrator"

    def __init__(self, location=None, model=None):
        pass

    def speak(self, text: str, language: str) -> bytes:
        _delay(0.5)
        rate, seconds = 8000, min(2.0, 0.2 + len(text) / 400)
        samples = [int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(rate * seconds))]
        frames = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(frames)
        return buf.getvalue()

    def languages(self) -> set[str]:
        return {"en", "fr", "ko", "de", "es"}


def register(register_backend) -> None:
    """Plugin hook: TALELOOM_PLUGINS=testbackends:register."""
    for role, cls in (("captioner", SolidCaptioner), ("llm", StoryLLM), ("illustrator", SolidIllustrator),
                      ("upscaler", NearestUpscaler), ("narrator", ToneNarrator)):
        register_backend(role, "test", cls, f"fast {role} for tests (never a product default)")
    register_backend("illustrator", "test-concepts", ConceptIllustrator, "fixed-size, fixed-vocabulary test illustrator")

