"""Orchestrator plumbing with stand-in backends: events, saving after every stage, resume, edits, bad briefs."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from book_doubles import FAKE_TEXT, CountingLLM, FakeCaptioner, FakeIllustrator, FakeUpscaler
from taleloom.backends import registry
from taleloom.book import Brief
from taleloom.errors import BadInputError
from taleloom.orchestrator import (
    Backends,
    create_book,
    extend_book,
    load_book,
    redraw_page,
    rewrite_page,
    run_book,
)
from taleloom.pipeline import STAGE, STAGES
from taleloom.stages.write import BOOK_SYSTEM, book_prefix

CAT = Path(__file__).parents[1] / "src/taleloom/assets/samples/cat.jpg"
URL = "http://books.test"


def backends(functions=FAKE_TEXT, **kw) -> Backends:
    parts = dict(captioner=FakeCaptioner(), llm=CountingLLM(), illustrator=FakeIllustrator(),
                 upscaler=FakeUpscaler(), narrator=registry.create("narrator", "espeak"))
    parts.update(kw)
    return Backends(functions=functions, **parts)


def make(tmp_path, name="b", pages=2, lang="en", **brief) -> Path:
    d = tmp_path / name
    create_book(d, Brief(pages=pages, lang=lang, hero="Mina", seed=3, **brief), CAT, URL)
    return d


def pixels(d: Path, rel: str) -> bytes:
    return Image.open(d / rel).tobytes()


def test_the_llm_loads_with_the_write_instructions_while_the_photo_is_looked_at(tmp_path):
    llm = CountingLLM()
    book = run_book(make(tmp_path), backends(llm=llm))
    prefix = book_prefix(book.brief)
    assert llm.preloaded == [[prefix]]  # the model process evaluates it then, not on write's clock
    assert prefix[0]["content"] == BOOK_SYSTEM and "The hero is called Mina" in prefix[1]["content"]


def test_a_book_is_made_with_every_file_and_timing(tmp_path):
    d = make(tmp_path)
    events = []
    book = run_book(d, backends(), events.append)
    assert book.complete and book.url == URL and book.id == "b"
    for rel in ["manifest.json", "photo.png", "pages/1.png", "pages/1.lowres.png", "pages/2.png", "audio/1.wav",
                "audio/2.wav", "book.pdf", "book.html", "qr.png"]:
        assert (d / rel).is_file(), rel
    assert not list(d.rglob("*.tmp")), "no temporary files are left behind"
    assert Image.open(d / "pages/1.png").size == (256, 256) and Image.open(d / "pages/1.lowres.png").size == (64, 64)
    for name in STAGES:
        rec = book.stages[name]
        assert rec.status == "done" and rec.seconds is not None and rec.model_seconds <= rec.seconds + 1e-6
    assert book.models["illustrator"] == "fake-illustrator" and book.stages["illustrate"].model_id == "fake-illustrator"
    assert book.pages[0].audio_seconds > 0 and book.files["pdf"] == "book.pdf"
    for page in book.pages:  # read-along: every printed word has its time in the page's narration
        shown = page.text_translated or page.text
        assert [w.text for w in page.words] == shown.split() and page.words_source
        assert 0 <= page.words[0].start and page.words[-1].end <= page.audio_seconds
    kinds = [(e.stage, e.kind) for e in events]
    assert kinds[0] == ("see", "started") and kinds[-1] == ("book", "done")
    finished = [s for s, k in kinds if k == "finished"]
    assert sorted(finished) == sorted(STAGES)  # every stage once; translate may finish beside the pictures
    for name in STAGES:  # but never before what it reads had finished
        started = kinds.index((name, "started"))
        assert all(kinds.index((r, "finished")) < started for r in STAGE[name].reads), name
    assert all(e.book_id == "b" for e in events)
    assert load_book(d) == book


def test_manifest_is_saved_after_every_stage(tmp_path):
    d = make(tmp_path)
    seen = {}

    def on_event(e):
        if e.kind == "finished":
            seen[e.stage] = json.loads((d / "manifest.json").read_text())["stages"][e.stage]["status"]

    run_book(d, backends(), on_event)
    assert seen == {name: "done" for name in STAGES}


def test_interrupted_book_resumes_to_the_same_book(tmp_path):
    whole = run_book(make(tmp_path, "whole", pages=3), backends())
    d = make(tmp_path, "cut", pages=3)
    broken = FakeIllustrator(fail_after=1)  # draws the first batch (2 pictures), then crashes
    with pytest.raises(RuntimeError, match="crashed"):
        run_book(d, backends(illustrator=broken))
    half = load_book(d)
    assert half.stages["write"].status == "done" and half.stages["illustrate"].status == "failed"
    assert "crashed" in half.stages["illustrate"].message
    assert [p.image_lowres is not None for p in half.pages] == [True, True, False]  # kept what was drawn
    assert not (d / "book.pdf").exists()
    llm = CountingLLM()
    done = run_book(d, backends(llm=llm))
    assert llm.calls == 0, "finished stages are not run again"
    assert done.complete and [p.text for p in done.pages] == [p.text for p in whole.pages]
    assert [p.request for p in done.pages] == [p.request for p in whole.pages]
    for p in done.pages:
        assert pixels(d, p.image) == pixels(tmp_path / "whole", p.image)


def test_keyboard_interrupt_is_recorded(tmp_path):
    class Stop(FakeUpscaler):
        def upscale(self, *a, **k):
            raise KeyboardInterrupt

    d = make(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_book(d, backends(upscaler=Stop()))
    assert load_book(d).stages["upscale"].message == "interrupted"
    assert run_book(d, backends()).complete


class SignallingIllustrator(FakeIllustrator):
    """Sets `drawing` when its first picture is asked for."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.drawing = threading.Event()

    def generate(self, requests):
        self.drawing.set()
        return super().generate(requests)


def test_translation_runs_beside_the_pictures(tmp_path):
    """The LLM's translation and the illustrator's pictures use different cores: one waits for the other
    only when it reads its output (pipeline.py `reads`), so a translation that needs the pictures to have
    started before it can finish completes the book instead of timing out."""
    illustrator = SignallingIllustrator()

    def translate(texts, lang, llm, names=(), kinds=()):
        assert illustrator.drawing.wait(20), "the pictures did not start while the translation ran"
        return FAKE_TEXT.translate(texts, lang, llm)

    book = run_book(make(tmp_path, lang="fr"), backends(replace(FAKE_TEXT, translate=translate),
                                                        illustrator=illustrator))
    assert book.complete and book.pages[0].text_translated.startswith("[fr]")


def test_a_failed_stage_stops_the_book_after_the_other_lane_saves(tmp_path):
    """Translation fails while the pictures are drawn: the error is raised once the pictures are saved,
    nothing after either runs, and running the book again redoes only the translation and what follows."""
    illustrator = SignallingIllustrator()

    def broken(texts, lang, llm, names=(), kinds=()):
        illustrator.drawing.wait(20)
        raise RuntimeError("translator crashed (test)")

    d = make(tmp_path, lang="fr")
    with pytest.raises(RuntimeError, match="translator crashed"):
        run_book(d, backends(replace(FAKE_TEXT, translate=broken), illustrator=illustrator))
    half = load_book(d)
    assert half.stages["translate"].status == "failed" and "translator crashed" in half.stages["translate"].message
    assert all(half.stages[s].status != "running" for s in STAGES)
    assert half.stages["illustrate"].status == "done", "the picture being drawn was finished and saved"
    assert half.stages["upscale"].status == "pending", "nothing new starts after a failure"
    assert half.stages["narrate"].status == "pending" and half.stages["bind"].status == "pending"
    assert not (d / "book.pdf").exists()
    again = FakeIllustrator()
    book = run_book(d, backends(illustrator=again))
    assert book.complete and book.pages[0].text_translated.startswith("[fr]")
    assert again.calls == 0, "the saved pictures are not drawn again"


def test_unsupported_narration_language_still_makes_the_book(tmp_path):
    from taleloom.backends.base import Narrator

    class EnglishOnly(Narrator):
        name = "english-only"

        def languages(self):
            return {"en"}

        def speak(self, text, language):
            raise AssertionError("a language it cannot read is never spoken")

    book = run_book(make(tmp_path, lang="ko"), backends(narrator=EnglishOnly()))
    assert book.complete and book.stages["narrate"].status == "skipped"
    assert "'ko'" in book.stages["narrate"].message and all(p.audio is None for p in book.pages)
    assert book.pages[0].text_translated.startswith("[ko]") and (tmp_path / "b" / "book.pdf").exists()


def test_idea_only_book_skips_see(tmp_path):
    d = tmp_path / "idea"
    create_book(d, Brief(pages=1, idea="a cat who flies"), None, URL)
    book = run_book(d, backends())
    assert book.photo is None and book.stages["see"].status == "skipped" and book.complete


def test_edits_are_recorded_and_rebound(tmp_path):
    d = make(tmp_path)
    be = backends(illustrator=FakeIllustrator(concepts=["cat face", "boat", "crescent moon"]))
    book = run_book(d, be)
    first = pixels(d, "pages/1.png")
    book = redraw_page(d, be, 1, seed=99)
    assert book.pages[0].request.seed == 99 and pixels(d, "pages/1.png") != first
    book = redraw_page(d, be, 1, style="ink")
    assert book.pages[0].request.style == "ink" and book.pages[0].request.seed == 99
    book = redraw_page(d, be, 1)  # no seed: the next one, as the API documents (not a random one)
    assert book.pages[0].request.seed == 100 and book.history[-1].params["seed"] == 100
    book = rewrite_page(d, be, 2, "put her on a boat")
    assert "put her on a boat" in book.pages[1].text and book.pages[1].scene == "a cat on a boat on the sea"
    assert book.pages[1].request.concepts == ["cat face", "boat"]
    book = extend_book(d, be, 2)
    assert len(book.pages) == 4 and book.brief.pages == 4 and (d / "pages/4.png").exists() and book.complete
    assert [c.action for c in book.history] == ["redraw", "redraw", "redraw", "rewrite", "extend"]
    assert book.history[0].params == {"seed": 99, "style": "storybook"} and book.history[3].page == 2
    from pypdf import PdfReader

    assert len(PdfReader(d / "book.pdf").pages) == 6


@pytest.mark.parametrize("kwargs, match", [
    ({"style": "cubist"}, "unknown style"),
    ({"lang": "tlh"}, "unknown language"),
])
def test_bad_briefs_are_refused_before_anything_is_written(tmp_path, kwargs, match):
    with pytest.raises(BadInputError, match=match):
        create_book(tmp_path / "x", Brief(pages=1, **kwargs), CAT, URL)
    assert not (tmp_path / "x").exists()


def test_other_bad_requests(tmp_path):
    with pytest.raises(BadInputError, match="photo, an idea"):
        create_book(tmp_path / "x", Brief(), None, URL)
    d = make(tmp_path)
    with pytest.raises(BadInputError, match="already holds a book"):
        create_book(d, Brief(), CAT, URL)
    with pytest.raises(BadInputError, match="holds no book"):
        load_book(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text('{"pages": "many"}')
    with pytest.raises(BadInputError, match="not a valid book manifest"):
        load_book(tmp_path / "bad")
    be = backends()
    run_book(d, be)
    with pytest.raises(BadInputError, match="page 5 does not exist"):
        redraw_page(d, be, 5)
    with pytest.raises(BadInputError, match="cannot add"):
        extend_book(d, be, 30)
    with pytest.raises(BadInputError, match="instruction"):
        rewrite_page(d, be, 1, " ")
    with pytest.raises(BadInputError, match="not an image"):
        create_book(tmp_path / "y", Brief(), __file__.encode(), URL)


def test_backends_are_created_lazily_from_settings(tmp_path):
    from taleloom.config import Settings

    be = Backends.from_settings(Settings(narrator="espeak"))
    assert not be.loaded("narrator")
    assert be.narrator is be.narrator and not be.loaded("narrator")  # the pool's wrapper, not the model yet
    assert be.narrator.languages() and be.loaded("narrator") and not be.loaded("illustrator")
    with pytest.raises(TypeError):
        Backends(painter=object())


def test_backend_options_from_settings_reach_the_backend():
    from taleloom.config import Settings

    be = Backends.from_settings(Settings(narrator="espeak", backend_options={"narrator": {"speed": 120}}))
    assert be.narrator.inner.options.speed == 120


def test_pages_left_in_english_are_read_in_english(tmp_path):
    from dataclasses import replace

    from taleloom.backends.speech.espeak import EspeakNarrator

    class Recording(EspeakNarrator):
        langs: list[str] = []

        def speak(self, text, language):
            self.langs.append(language)
            return super().speak(text, language)

    class Partly(list):
        kept_english = [0, 2]
        kept_words = {3: "fairy"}  # page 2 is translated but kept one English word

    partly = replace(FAKE_TEXT, translate=lambda texts, lang, llm, names=(), kinds=(): Partly(  # texts: title, cover, pages
        [texts[0], f"[{lang}] {texts[1]}", texts[2]] + [f"[{lang}] {t}" for t in texts[3:]]))
    narrator = Recording()
    book = run_book(make(tmp_path, lang="ko"), backends(partly, narrator=narrator))  # title + page 1 kept in English
    assert sorted(narrator.langs) == ["en", "ko"] and all(p.audio for p in book.pages)
    assert book.translation.status == "partly" and book.translation.kept_english == ["title", "page 1"]
    assert book.translation.kept_words == {"page 2": "fairy"}  # the manifest says which words stayed English
