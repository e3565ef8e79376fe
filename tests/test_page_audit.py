"""Pages that check themselves, with the shipped aligned encoder on real training glyphs: a page whose
picture shows another hero fails, is redrawn with a new seed and keeps the attempt that passes; a page
that never passes keeps its best attempt; every attempt is recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from taleloom.book import ImageRequest
from taleloom.stages.audit import Thresholds, audit, hero_consistency, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import build_emoji_dataset as bed  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    from taleloom.diffusion.aligned import load_aligned_encoder

    return load_aligned_encoder(None, "cpu")


@pytest.fixture(scope="module")
def glyph():
    if not bed.FONT_PATH.exists():
        pytest.skip("fonts-noto-color-emoji is not installed")
    from PIL import ImageFont

    font = ImageFont.truetype(str(bed.FONT_PATH), size=bed.FONT_SIZE)
    by_name = {bed.cldr_name(e): e for e in bed.select_emoji()}
    return lambda name: bed.compose(bed.render_glyph(font, by_name[name]), 0, None)


def req(seed: int) -> ImageRequest:
    return ImageRequest(prompt="a cat", concepts=["cat", "sun"], seed=seed)


def test_the_hero_is_found_and_a_stranger_is_not(encoder, glyph):
    cat, rocket = glyph("cat"), glyph("rocket")
    s = score([cat, cat, rocket], ["cat"] * 3, ["cat", "cat", "cat"], encoder)
    assert s[0].hero > 0.9 and s[2].hero < s[0].hero
    assert s[0].consistency > s[2].consistency  # the rocket does not look like the cat of the other pages
    assert hero_consistency([cat, cat, cat], encoder) > hero_consistency([cat, cat, rocket], encoder)


def test_a_failing_page_is_redrawn_until_it_passes(encoder, glyph):
    cat, rocket = glyph("cat"), glyph("rocket")
    asked: list[list[int]] = []

    def redraw(requests):
        asked.append([r.seed for r in requests])
        return [cat for _ in requests]  # the new seed draws the hero

    th = Thresholds(hero=0.9, setting=0.0001, consistency=0.5)
    images, requests, checks = audit([cat, cat, rocket], [req(1), req(2), req(3)], ["cat"] * 3, ["sun"] * 3,
                                     encoder, redraw, [True, True, True], retries=2, thresholds=th)
    assert len(asked) == 1 and len(asked[0]) == 1 and asked[0][0] != 3  # only page 3, with a new seed
    assert [len(c) for c in checks] == [1, 1, 2]
    assert not checks[2][0].passed and checks[2][1].passed and checks[2][1].kept and not checks[2][0].kept
    assert images[2] is cat and requests[2].seed == asked[0][0]  # the manifest's seed redraws the kept picture
    assert requests[0].seed == 1 and all(c[0].kept for c in checks[:2])


def test_a_page_that_never_passes_keeps_its_best_attempt_and_others_are_left_alone(encoder, glyph):
    cat, rocket, pizza = glyph("cat"), glyph("rocket"), glyph("pizza")
    calls = []

    def redraw(requests):
        calls.append(len(requests))
        return [pizza for _ in requests]

    th = Thresholds(hero=0.9, setting=0.0001, consistency=0.5)
    images, requests, checks = audit([cat, cat, rocket, rocket], [req(i) for i in range(4)], ["cat"] * 4, ["sun"] * 4,
                                     encoder, redraw, [True, True, True, False], retries=2, thresholds=th)
    assert calls == [1, 1]  # page 3 tried twice more; page 4 failed too but may not be redrawn (a user's seed)
    assert len(checks[2]) == 3 and not any(c.passed for c in checks[2])
    assert sum(c.kept for c in checks[2]) == 1 and len(checks[3]) == 1
    kept = next(c for c in checks[2] if c.kept)
    assert requests[2].seed == kept.seed


def test_the_illustrate_stage_checks_its_pages_and_records_every_try(tmp_path, encoder, glyph, monkeypatch):
    """Through the orchestrator: an illustrator whose odd seeds draw a rocket instead of the cat; the
    stage redraws those pages, the manifest keeps each check and the seed of the kept picture."""
    from PIL import Image

    from book_doubles import FakeIllustrator
    from taleloom.orchestrator import load_book, redraw_page, run_book
    from test_orchestrator import backends, make

    cat, rocket = glyph("cat"), glyph("rocket")

    class Drawer(FakeIllustrator):
        aligned = encoder

        def generate(self, requests):
            self.calls += 1
            return [(rocket if r.seed % 2 else cat).resize((64, 64), Image.Resampling.BICUBIC) for r in requests]

    drawer = Drawer(concepts=["cat", "rocket", "sun", "house"])
    d = make(tmp_path, pages=4)
    book = run_book(d, backends(illustrator=drawer))
    assert all(p.checks for p in book.pages)
    for p in book.pages:
        kept = [c for c in p.checks if c.kept]
        assert len(kept) == 1 and kept[0].seed == p.request.seed
        assert p.request.seed % 2 == 0 or not any(c.passed for c in p.checks)  # a rocket is never kept if a cat came
        if p.checks[0].seed % 2:
            assert len(p.checks) > 1 and not p.checks[0].passed  # the rocket was caught and redrawn
    assert "check" in book.stages["illustrate"].message
    assert load_book(d) == book
    book = redraw_page(d, backends(illustrator=drawer), 2, seed=7)  # the user's own seed draws a rocket...
    assert book.pages[1].request.seed == 7 and len(book.pages[1].checks) == 1  # ...checked, and kept as asked
    assert not book.pages[1].checks[0].passed and book.pages[1].checks[0].kept
