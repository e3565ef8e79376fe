"""translate: page texts (and the title) into the reader's language; scenes stay English for the illustrator.

The translator is the LLM (no PyPI package ships an offline translation model that installs without a
download at run time). Each translation is checked — not empty, changed, in the language's script,
of a plausible length, names kept, no loops — and then translated back to English: if the round
trip loses most of the meaning, the translation is rejected. A text that fails every try stays in
English, with a warning in `Translation.warnings` for the manifest, instead of failing the book.

Honest expectation: the embedded SmolLM2-135M cannot translate; its attempts fail these checks and the
book keeps its English text (when the longest text fails, the rest are not tried, to save time). Any
OpenAI-compatible server or a larger GGUF (TALELOOM_LLM=...) translates properly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from taleloom.backends.base import Sampling, TextModel
from taleloom.errors import BackendError, choice_error
from taleloom.stages import story_text as st
from taleloom.stages.llm_json import ask_json

# ISO 639-1 code → (name, Unicode ranges of its script or None for Latin, one example sentence)
_EXAMPLE = "The sun is shining and the birds are singing."
_TABLE: dict[str, tuple[str, str | None, str]] = {
    "en": ("English", None, _EXAMPLE),
    "ar": ("Arabic", "\u0600-\u06ff", "الشمس مشرقة والطيور تغني."),
    "de": ("German", None, "Die Sonne scheint und die Vögel singen."),
    "el": ("Greek", "\u0370-\u03ff", "Ο ήλιος λάμπει και τα πουλιά τραγουδούν."),
    "es": ("Spanish", None, "El sol brilla y los pájaros cantan."),
    "fr": ("French", None, "Le soleil brille et les oiseaux chantent."),
    "hi": ("Hindi", "\u0900-\u097f", "सूरज चमक रहा है और पक्षी गा रहे हैं।"),
    "id": ("Indonesian", None, "Matahari bersinar dan burung-burung bernyanyi."),
    "it": ("Italian", None, "Il sole splende e gli uccelli cantano."),
    "ja": ("Japanese", "\u3040-\u30ff\u4e00-\u9fff", "太陽が輝いていて、鳥が歌っています。"),
    "ko": ("Korean", "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f", "해가 빛나고 새들이 노래해요."),
    "nl": ("Dutch", None, "De zon schijnt en de vogels zingen."),
    "pl": ("Polish", None, "Słońce świeci, a ptaki śpiewają."),
    "pt": ("Portuguese", None, "O sol está brilhando e os pássaros estão cantando."),
    "ru": ("Russian", "\u0400-\u04ff", "Солнце светит, и птицы поют."),
    "sv": ("Swedish", None, "Solen skiner och fåglarna sjunger."),
    "th": ("Thai", "\u0e00-\u0e7f", "ดวงอาทิตย์ส่องแสงและนกกำลังร้องเพลง"),
    "tr": ("Turkish", None, "Güneş parlıyor ve kuşlar şarkı söylüyor."),
    "uk": ("Ukrainian", "\u0400-\u04ff", "Сонце світить, і пташки співають."),
    "vi": ("Vietnamese", None, "Mặt trời đang chiếu sáng và những chú chim đang hót."),
    "zh": ("Chinese", "\u4e00-\u9fff", "太阳在照耀，鸟儿在歌唱。"),
}
LANGUAGES: dict[str, str] = {code: row[0] for code, row in _TABLE.items()}

TRIES = 2  # answers per text; a translation is costly to check (one more call for the round trip)
SAMPLING = Sampling(temperature=0.2, top_p=0.9, top_k=40, repeat_penalty=1.1)
ROUND_TRIP_KEPT = 0.3  # share of the source's content words the back-translation must give again
_ENGLISH_ONLY = frozenset("the and was were with his she they there that this had said would could from have".split())


class Translation(list):
    """The translated texts (a plain list of str, as the contract says) plus what went wrong."""

    def __init__(self, texts: list[str], warnings: list[str] | None = None, kept_english: list[int] | None = None):
        super().__init__(texts)
        self.warnings = warnings or []
        self.kept_english = kept_english or []  # indices of texts left in English


def check_language(lang: str) -> str:
    """`lang` lower-cased if supported, else BadInputError listing the supported codes."""
    code = (lang or "").strip().lower()
    if code not in LANGUAGES:
        raise choice_error("language", lang, [f"{c} ({n})" for c, n in LANGUAGES.items()])
    return code


def translate(texts: list[str], lang: str, llm: TextModel, sampling: Sampling | None = None) -> Translation:
    """`texts` in `lang`; English is returned as it is. Texts that cannot be translated stay English."""
    code = check_language(lang)
    if code == "en":
        return Translation(list(texts))
    model = getattr(llm, "model_id", "") or "the LLM"
    out, warnings, kept = list(texts), [], []
    # the longest text goes first: if the model cannot translate it, it will not do the rest either
    order = sorted((i for i, t in enumerate(texts) if t.strip()), key=lambda i: -len(texts[i]))
    for n, i in enumerate(order):
        try:
            out[i] = translate_one(texts[i], code, llm, sampling, seed=i)
        except BackendError as e:
            kept.append(i)
            warnings.append(f"text {i + 1} kept in English: {e.message}")
            if n == 0:
                break
    if kept and (kept[0] == order[0] or len(kept) * 2 > len(order)):  # a half-English book reads worse
        warnings.insert(0, f"{model} could not translate into {LANGUAGES[code]}, so the book keeps its English "
                           "text; use a larger LLM for translation (TALELOOM_LLM=openai:... or gguf:...)")
        return Translation(list(texts), warnings[:2], list(range(len(texts))))
    return Translation(out, warnings, sorted(kept))


def translate_one(text: str, code: str, llm: TextModel, sampling: Sampling | None = None, seed: int = 0) -> str:
    """One text into language `code`, checked and verified by a round trip; BackendError if every try fails."""
    name, script, example = _TABLE[code]
    s = (sampling or SAMPLING).model_copy(update={"seed": (sampling.seed if sampling and sampling.seed else 0) + seed,
                                                   "max_tokens": min(1024, len(text) * 3 + 40)})
    schema = {"type": "object", "properties": {"translation": {"type": "string", "minLength": 1,
                                                               "maxLength": min(1000, max(40, len(text) * 3))}},
              "required": ["translation"]}
    messages = [{"role": "system", "content": f"You translate children's stories from English to {name}. "
                                              "Answer with JSON only."},
                {"role": "user", "content": f"Translate to {name}: {_EXAMPLE}"},
                {"role": "assistant", "content": json.dumps({"translation": example}, ensure_ascii=False)},
                {"role": "user", "content": f"Translate to {name}: {text}"}]

    def check(d: dict[str, Any], attempt: int) -> str | None:
        got = d["translation"].strip()
        return problem(text, got, code) or round_trip(text, got, name, llm, s)

    d = ask_json(llm, messages, schema, s, f"translate text into {name}", check, tries=TRIES)
    return " ".join(d["translation"].split())


def problem(source: str, got: str, code: str) -> str | None:
    """What is visibly wrong with `got` as a translation of `source` into `code`, else None."""
    name, script, example = _TABLE[code]
    flat = " ".join(got.split())
    if not flat:
        return "empty translation"
    if flat.lower() == " ".join(source.split()).lower():
        return "not translated (same as the English)"
    if flat == example:
        return "copied the example"
    letters = [c for c in flat if c.isalpha()]
    if script:
        share = sum(bool(re.match(f"[{script}]", c)) for c in letters) / max(1, len(letters))
        if share < 0.6:
            return f"not in {name} script"
    else:
        if not st.english_letters(flat, 0.8):
            return f"not in Latin script for {name}"
        w = [x.lower() for x in st.words(flat)]
        if w and sum(x in _ENGLISH_ONLY for x in w) / len(w) > 0.15:
            return "still English"
        lost = sorted(n for n in names_in(source) if n not in flat)
        if lost:
            return f"lost the names {lost}"
    ratio = len(flat) / max(1, len(source))
    if not 0.2 <= ratio <= 4.0:
        return f"length {len(flat)} is implausible for {len(source)} English characters"
    if re.search(r"(.{6,}?)\1{2,}", flat):
        return "a piece of text repeats"
    return None


def names_in(text: str) -> set[str]:
    """Capitalised words inside sentences (names, kept by a translation); none in a Title Cased Title."""
    found = set(re.findall(r"(?<![.!?]\s)(?<![.!?'\"“‘])(?<!^)\b[A-Z][a-z]+", text))
    capitals = [w for w in st.words(text) if w[:1].isupper()]
    return set() if len(capitals) * 2 > len(st.words(text)) else found


def round_trip(source: str, got: str, name: str, llm: TextModel, sampling: Sampling) -> str | None:
    """Translate `got` back to English; None if it keeps enough of the source's meaning."""
    want = st.content_words(source)
    if len(want) < 3:
        return None  # too short to judge (a title of two words)
    messages = [{"role": "system", "content": f"You translate from {name} to English. Answer with JSON only."},
                {"role": "user", "content": f"Translate to English: {got}"}]
    schema = {"type": "object", "properties": {"english": {"type": "string", "minLength": 1,
                                                           "maxLength": min(1000, max(40, len(source) * 2))}},
              "required": ["english"]}
    try:
        back = json.loads(llm.chat(messages, sampling.model_copy(update={"max_tokens": len(source) // 2 + 60}),
                                   schema), strict=False).get("english", "")
    except (BackendError, ValueError, AttributeError):
        return "the round trip back to English failed"
    kept = len(want & st.content_words(back)) / len(want)
    return None if kept >= ROUND_TRIP_KEPT else f"the round trip kept {kept:.0%} of the meaning ({back[:60]!r})"
