"""Small stand-ins for the model backends and the LLM's write/translate stage functions, for tests of
the book pipeline's plumbing (orchestrator, stages, CLI). Never used by the product."""

from __future__ import annotations

import numpy as np
from PIL import Image

from taleloom.backends.base import Captioner, Illustrator, TextModel, Upscaler
from taleloom.book import Caption, CastMember, Draft, PageDraft
from taleloom.bookrun import StageFunctions


class FakeCaptioner(Captioner):
    name = "fake"
    model_id = "fake-captioner"

    def caption(self, image, hint=None):
        text = "A tabby cat looks at the camera." + (f" {hint}" if hint else "")
        return Caption(text=text, concepts=["cat face", "house"], facts={"size": list(image.size)})


class FakeIllustrator(Illustrator):
    """A picture whose colours come from the request's seed: same seed, same picture."""

    name = "fake"
    model_id = "fake-illustrator"
    max_batch = 2

    def __init__(self, fail_after: int | None = None, concepts: list[str] | None = None):
        self.calls, self.fail_after, self.vocab = 0, fail_after, concepts
        self.draws_concepts = concepts is not None

    def nearest_concepts(self, text: str, k: int = 5) -> list[str]:
        words = set(text.lower().replace(",", " ").split())
        return sorted(self.vocab, key=lambda c: (-len(words & set(c.split())), c))[:k]

    def generate(self, requests):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("illustrator crashed (test)")
        out = []
        for r in requests:
            rng = np.random.default_rng(r.seed)
            out.append(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
        return out


class FakeUpscaler(Upscaler):
    name = "fake"
    model_id = "fake-upscaler"

    def upscale(self, image, factor=4, prompt="", seed=0):
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


class CountingLLM(TextModel):
    """Only counts calls: the fake write/translate modules below do the 'writing'."""

    name = "fake"
    model_id = "fake-llm"

    def __init__(self):
        self.calls = 0
        self.preloaded: list[list[list[dict[str, str]]]] = []  # the prefixes of each preload

    def preload(self, prefixes=()):
        self.preloaded.append(list(prefixes))

    def chat(self, messages, sampling=None, schema=None):
        self.calls += 1
        return "{}"


def _draft(caption, brief, llm, sampling=None) -> Draft:
    llm.chat([{"role": "user", "content": "story"}])
    hero = brief.hero or "Mina"
    pages = [PageDraft(text=f"Page {i + 1}: {hero} the cat plays (seed {brief.seed}).",
                       scene=f"a cat playing near a house, part {i + 1}") for i in range(brief.pages)]
    return Draft(title=f"{hero} and the Garden", cast=[CastMember(name=hero, look="a small tabby cat")], pages=pages)


def _rewrite(pages, n, instruction, brief, llm) -> PageDraft:
    llm.chat([{"role": "user", "content": instruction}])
    return PageDraft(text=f"Page {n} again ({instruction}).", scene="a cat on a boat on the sea")


def _extend(book, n_more, llm) -> list[PageDraft]:
    llm.chat([{"role": "user", "content": "more"}])
    return [PageDraft(text=f"More {i + 1}.", scene="a cat under the moon") for i in range(n_more)]


def _translate(texts, lang, llm, names=(), kinds=()):
    if lang == "en":
        return list(texts)
    llm.chat([{"role": "user", "content": "translate"}])
    return [f"[{lang}] {t}" for t in texts]


# the real stage functions, but write/rewrite/extend/translate stand-ins that need no real LLM; pass them in:
# Backends(functions=FAKE_TEXT, ...), or dataclasses.replace(FAKE_TEXT, translate=...) for one test
FAKE_TEXT = StageFunctions(write_story=_draft, rewrite_page=_rewrite, extend_story=_extend, translate=_translate)
