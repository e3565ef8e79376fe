"""Story quality of the write and translate stages, old model vs new, by automatic checks.

    python benchmarks/story_quality.py [--models embedded:smollm2,embedded] [--seeds 0,1,2] [--briefs 10]
                                       [--langs fr,de,es,ja] [--samples docs/samples] [--out benchmarks/results]

For each of 10 briefs (a photo's caption as the captioner gives it, plus the reader's brief) x each seed, each
model writes a 4-page book (write_story). Checks per book:
- written: the stage gave a book (did not fail every try)
- hero on every page: the hero's name is on every page
- cast consistent: every scene names a cast member, and the hero's kind (cat, fox...) is what the photo shows
- no markup: no tag, brace, bracket or prompt words in the title, cast line, pages or scenes
- no repeated page: the largest MiniLM cosine similarity between two pages is below 0.9
- on topic: MiniLM cosine between the story and the caption (mean), and the share of books >= 0.3
- reading level: Flesch-Kincaid grade of the pages <= the reader's age - 4 (at least grade 1)
Translation (first seed of each brief, every language): the book's title and pages through the translate stage,
then language identified by py3langid (share of texts identified as the target language; English kept when the
stage gives up counts as a miss) and the back-translation's MiniLM similarity to the English (same model,
translating back). Prints a table, saves JSON + a bar chart, and renders 3 sample books' spreads as PNG.
Timings are noisy on a shared machine: the 1-minute load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BRIEFS = [  # (caption text, concepts, brief fields)
    ("a tabby cat sitting on a wooden floor", ["cat", "tabby cat", "floor"], {"hero": "Mina"}),
    ("a brown dog running on a sandy beach by the sea", ["dog", "beach", "sea"], {}),
    ("a red fox in a snowy forest", ["fox", "snow", "forest"], {"age": 5}),
    ("a small yellow duck on a pond with green reeds", ["duck", "pond"], {"hero": "Pip", "age": 4}),
    ("a child flying a kite in a park on a windy day", ["child", "kite", "park"], {"age": 7}),
    ("a cup of coffee on a table next to a croissant", ["espresso", "cup", "croissant"], {}),
    ("a red bicycle leaning against a blue wall", ["bicycle", "wall"], {"hero": "Leo", "age": 8}),
    ("a rocket on a launch pad under a clear sky", ["rocket", "sky"], {"age": 9}),
    ("an owl sitting on a branch at night", ["owl", "branch", "moon"], {"tone": "funny"}),
    ("a turtle walking on green grass in a garden", ["turtle", "grass", "garden"], {"hero": "Otto", "age": 6}),
]
SIMILAR_PAGE = 0.9
ON_TOPIC = 0.3


def flesch_kincaid(text: str) -> float:
    """Flesch-Kincaid grade level (syllables by vowel groups, a common approximation)."""
    sentences = max(1, len(re.findall(r"[.!?]+", text)))
    words = re.findall(r"[A-Za-z']+", text)
    if not words:
        return 0.0
    syllables = sum(max(1, len(re.findall(r"[aeiouy]+", w.lower())) - (w.lower().endswith("e") and len(w) > 3))
                    for w in words)
    return 0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59


def book_checks(draft, caption, brief, encoder) -> dict:
    from taleloom.stages import story_text as st

    hero = draft.cast[0]
    texts = [p.text for p in draft.pages]
    scenes = [p.scene for p in draft.pages]
    emb = encoder.embed(texts + [caption, " ".join(texts)])
    pages, cap, story = emb[: len(texts)], emb[len(texts)], emb[-1]
    sims = (pages @ pages.T).fill_diagonal_(-1.0)
    printed = [draft.title, hero.look, *texts, *scenes]
    kind = hero.look.split(",")[0].lower()
    subject = caption.split(" on ")[0].split(" in ")[0].split(" next ")[0].lower()
    grade = flesch_kincaid(" ".join(texts))
    return {
        "hero_every_page": all(st.mentions(t, hero.name) for t in texts),
        "cast_consistent": all(any(st.mentions(s, c.name) for c in draft.cast) for s in scenes)
                           and bool(st.content_words(kind) & st.content_words(subject + " " + brief.get("idea", ""))
                                    or "child" in subject),
        "no_markup": not any(st.has_markup(x) or st.echoes_prompt(x) for x in printed),
        "max_page_similarity": round(float(sims.max()), 3),
        "on_topic": round(float(story @ cap), 3),
        "fk_grade": round(grade, 1),
        "reading_level_ok": grade <= max(1, brief.get("age", 6) - 4),
    }


def run_model(spec: str, seeds: list[int], briefs: list, encoder, langs: list[str], log,
              translate_briefs: int = 10, save=None) -> dict:
    """Every brief x seed by one model (and the translations); `save(partial result)` after each book, so a
    run stopped early still leaves its figures."""
    from taleloom.backends import registry
    from taleloom.book import Brief, Caption
    from taleloom.errors import TaleloomError
    from taleloom.stages.translate import identify, translate
    from taleloom.stages.write import told_kinds, write_story

    llm = registry.create("llm", spec)
    books, translations = [], []
    # seed by seed, every brief: a run stopped early has covered the briefs evenly
    for seed, (b, (text, concepts, fields)) in ((s, bt) for s in seeds for bt in enumerate(briefs)):
        brief = Brief(pages=4, seed=seed, **fields)
        caption = Caption(text=text, concepts=concepts)
        t0 = time.perf_counter()
        try:
            draft = write_story(caption, brief, llm)
        except TaleloomError as e:
            books.append({"brief": b, "seed": seed, "written": False, "error": e.message[:300],
                          "seconds": round(time.perf_counter() - t0, 1)})
            log(f"{spec} brief {b} seed {seed}: FAILED {e.message[:100]}")
            continue
        row = {"brief": b, "seed": seed, "written": True, "seconds": round(time.perf_counter() - t0, 1),
               "title": draft.title, "cast": [c.model_dump() for c in draft.cast],
               "pages": [p.model_dump() for p in draft.pages], "notes": draft.notes}
        row |= book_checks(draft, text, fields, encoder)
        books.append(row)
        if save:
            save({"books": books, "translations": translations, "summary": summarize(books, translations, langs)})
        log(f"{spec} brief {b} seed {seed}: {row['seconds']} s, hero {row['hero_every_page']}, "
            f"markup-free {row['no_markup']}, max sim {row['max_page_similarity']}")
        if seed != seeds[0] or not langs or b >= translate_briefs:
            continue
        english = [draft.title] + [p.text for p in draft.pages]
        for lang in langs:
            t0 = time.perf_counter()
            out = translate(english, lang, llm, names=[c.name for c in draft.cast], kinds=told_kinds(draft.cast, brief))
            ids = [identify(t)[0] for t in out[1:]]
            back = translate_back(list(out[1:]), lang, llm)
            sims = encoder.embed(back) @ encoder.embed(english[1:]).T
            translations.append({
                "brief": b, "lang": lang, "seconds": round(time.perf_counter() - t0, 1),
                "identified": sum(i == lang for i in ids) / len(ids), "kept_english": len(out.kept_english),
                "back_similarity": round(float(sims.diagonal().mean()), 3), "texts": list(out),
                "back": back})
            if save:
                save({"books": books, "translations": translations,
                      "summary": summarize(books, translations, langs)})
            log(f"{spec} brief {b} {lang}: identified {translations[-1]['identified']:.0%}, back-sim "
                f"{translations[-1]['back_similarity']}")
    return {"books": books, "translations": translations, "summary": summarize(books, translations, langs)}


def translate_back(texts: list[str], lang: str, llm) -> list[str]:
    """The model's own translation back to English (one call), for the round-trip similarity."""
    from taleloom.backends.base import Sampling
    from taleloom.stages.translate import LANGUAGES

    schema = {"type": "object", "required": ["english"], "properties": {"english": {
        "type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 600},
        "minItems": len(texts), "maxItems": len(texts)}}}
    numbered = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))
    messages = [{"role": "system", "content": f"You translate from {LANGUAGES[lang]} to English. JSON only."},
                {"role": "user", "content": f"Translate each numbered text into English:\n{numbered}"}]
    try:
        got = json.loads(llm.chat(messages, Sampling(temperature=0.2, seed=0, max_tokens=800), schema),
                         strict=False)["english"]
        return [str(g) for g in got]
    except Exception:  # noqa: BLE001 — a failed round trip scores as unrelated text
        return [""] * len(texts)


def summarize(books: list[dict], translations: list[dict], langs: list[str]) -> dict:
    written = [b for b in books if b["written"]]
    n = len(books)

    def share(key, rows=written, total=n) -> float:
        return round(sum(bool(r[key]) for r in rows) / max(1, total), 3)

    out = {"books": n, "written": round(len(written) / max(1, n), 3),
           "hero_every_page": share("hero_every_page"), "cast_consistent": share("cast_consistent"),
           "no_markup": share("no_markup"),
           "no_repeated_page": round(sum(b["max_page_similarity"] < SIMILAR_PAGE for b in written) / max(1, n), 3),
           "on_topic_mean": round(sum(b["on_topic"] for b in written) / max(1, len(written)), 3),
           "on_topic": round(sum(b["on_topic"] >= ON_TOPIC for b in written) / max(1, n), 3),
           "reading_level_ok": share("reading_level_ok"),
           "seconds_per_book": round(sum(b["seconds"] for b in books) / max(1, n), 1)}
    for lang in langs:
        rows = [t for t in translations if t["lang"] == lang]
        if rows:
            out[f"{lang}_identified"] = round(sum(t["identified"] for t in rows) / len(rows), 3)
            # a text the stage kept in English comes back as itself: its similarity says nothing, so only
            # really translated books count (None when the model translated none)
            real = [t["back_similarity"] for t in rows if t["kept_english"] < len(t["texts"])]
            out[f"{lang}_back_similarity"] = round(sum(real) / len(real), 3) if real else None
    return out


def table(results: dict) -> str:
    models = list(results)
    keys = list(next(iter(results.values()))["summary"])
    lines = ["| check | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(str(results[m]["summary"].get(k, "")) for m in models) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in next(iter(results.values()))["summary"] if k not in ("books", "seconds_per_book",
                                                                           "on_topic_mean")]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(results)
    for i, (model, r) in enumerate(results.items()):
        ax.bar([x + i * width for x in range(len(keys))], [r["summary"].get(k) or 0 for k in keys], width,
               label=f"{model} ({r['summary']['books']} books)")
    ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(keys))], keys, rotation=35, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of books (translation: of texts / similarity)")
    ax.legend()
    ax.set_title("Story quality: automatic checks, old vs new embedded LLM")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def render_samples(results: dict, folder: Path, briefs: list) -> list[str]:
    """The first seed of briefs 0-2, by each model: the PDF's cover and 4 spreads (text side; no pictures are
    drawn here) stacked into one small PNG per book."""
    import subprocess
    import tempfile

    from PIL import Image

    from taleloom.book import Brief, CastMember, Page, Storybook
    from taleloom.render.pdf import html_to_pdf, render_html

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for model, r in results.items():
        for row in [b for b in r["books"] if b["written"] and b["brief"] < 3][:3]:
            if row["seed"] != min(b["seed"] for b in r["books"]):
                continue
            book = Storybook(brief=Brief(pages=4, **briefs[row["brief"]][2]), title=row["title"],
                             cast=[CastMember(**c) for c in row["cast"]],
                             pages=[Page(index=i + 1, text=p["text"], scene=p["scene"]) for i, p in
                                    enumerate(row["pages"])], models={"llm": model})
            with tempfile.TemporaryDirectory() as tmp:
                pdf = Path(tmp) / "book.pdf"
                pdf.write_bytes(html_to_pdf(render_html(book, "pdf.html", None), Path(tmp)))
                subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "5", str(pdf), str(Path(tmp) / "p")],
                               check=True)
                shots = [Image.open(p).convert("RGB") for p in sorted(Path(tmp).glob("p*.png"))]
            sheet = Image.new("RGB", (max(s.width for s in shots), sum(s.height for s in shots)), "white")
            y = 0
            for shot in shots:  # cover, then each spread (picture side empty: text only)
                sheet.paste(shot, (0, y))
                y += shot.height
            name = f"{re.sub(r'[^a-z0-9]+', '-', model.lower())}-brief{row['brief']}.png"
            sheet.save(folder / name, optimize=True)
            made.append(name)
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="embedded:smollm2,embedded")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--briefs", type=int, default=len(BRIEFS))
    ap.add_argument("--langs", default="fr,de,es,ja")
    ap.add_argument("--translate-briefs", type=int, default=len(BRIEFS),
                    help="translate the first seed's book of this many briefs (each: every language and back)")
    ap.add_argument("--samples", type=Path, default=ROOT / "docs/samples")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--no-samples", action="store_true", help="do not render sample books")
    ap.add_argument("--combine", type=Path, nargs="+", help="merge these story_quality.json files (one model each, "
                                                           "run in parallel) into --out, then render the samples")
    args = ap.parse_args()
    if args.combine:
        return combine(args)
    import torch

    from taleloom.diffusion.text_encoder import TextEncoder

    torch.set_num_threads(1)
    encoder = TextEncoder(max_len=128)
    seeds = [int(s) for s in args.seeds.split(",")]
    langs = [c for c in args.langs.split(",") if c]
    started, load_before = time.time(), os.getloadavg()[0]
    results: dict = {}
    args.out.mkdir(parents=True, exist_ok=True)

    def record_of(results: dict) -> dict:
        return {"models": results, "seeds": seeds, "briefs": args.briefs, "langs": langs,
              "translate_briefs": args.translate_briefs,
              "thresholds": {"similar_page": SIMILAR_PAGE, "on_topic": ON_TOPIC},
              "machine": {"cpus": os.cpu_count(), "load_average_1m_before": round(load_before, 2),
                          "load_average_1m_after": round(os.getloadavg()[0], 2),
                          "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                          "minutes": round((time.time() - started) / 60, 1)}}

    def save(spec: str, partial: dict) -> None:
        (args.out / "story_quality.json").write_text(json.dumps(record_of(results | {spec: partial}), indent=1,
                                                                ensure_ascii=False) + "\n")

    for spec in args.models.split(","):
        results[spec] = run_model(spec, seeds, BRIEFS[: args.briefs], encoder, langs,
                                  lambda m: print(m, flush=True), args.translate_briefs,
                                  save=lambda partial, spec=spec: save(spec, partial))
    record = record_of(results)
    if not args.no_samples:
        record["samples"] = render_samples(results, args.samples, BRIEFS)
    (args.out / "story_quality.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    plot(results, args.out / "story_quality.png")
    print(table(results))
    print(f"\n(written to {args.out / 'story_quality.json'} and story_quality.png; load "
          f"{record['machine']['load_average_1m_before']} -> {record['machine']['load_average_1m_after']})")


def combine(args) -> None:
    parts = [json.loads(p.read_text()) for p in args.combine]
    record = parts[0] | {"models": {m: r for part in parts for m, r in part["models"].items()},
                         "machine": [part["machine"] for part in parts]}
    for r in record["models"].values():  # summaries again, with this version's rules
        r["summary"] = summarize(r["books"], r["translations"], record["langs"])
    record["samples"] = render_samples(record["models"], args.samples, BRIEFS)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "story_quality.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    plot(record["models"], args.out / "story_quality.png")
    print(table(record["models"]))


if __name__ == "__main__":
    main()
