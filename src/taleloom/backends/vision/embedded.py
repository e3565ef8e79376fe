"""Embedded captioner (offline, CPU): a pretrained ImageNet classifier (EfficientNet-Lite0, weights from a
PyPI wheel) names the photo's subject in a child's words, faces add people, plain image facts add colours
and light, our aligned encoder maps the subject to concepts the embedded illustrator can draw, and the LLM
words it all into a caption (talk 000, slide 11: image features, then a language model speaks).

It names only what the classifier is sure of ("a cat", else "an animal", else nothing); the LLM's caption
must name that subject and no other animal or object. When its answers fail validation, a fixed template
words the same facts instead. `classifier="none"` is the emoji-only captioner of before, kept to compare.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, Literal

from PIL import Image
from pydantic import Field

from taleloom.backends.base import Captioner, Sampling, TextModel
from taleloom.backends.base import Options as BaseOptions
from taleloom.backends.vision.efficientnet_lite import CONFIGS
from taleloom.backends.vision.facts import COLOUR_NAMES, describe_facts, image_facts, working_copy
from taleloom.backends.vision.imagenet_nouns import ancestry, labels
from taleloom.backends.vision.subjects import Bars, ImageNetClassifier, ends_noun_phrase, name_subjects
from taleloom.book import Caption, count

# When the whole photo names nothing, its middle this fraction of the width and height is classified alone: a
# photographer puts a small subject there, and seen whole it is lost in the leaves (a dragonfly on a branch: 0.13
# of the centre crop, 0.98 of the middle half). What the closer look finds is said only at CLOSER_BARS: at the
# whole photo's bars it also named the moon "a worm" (0.70), dandelion seeds "an animal" (0.78) and a jetty's
# boathouse "a building" (0.68) on the caption benchmark (benchmarks/caption_accuracy.py: named 45.5 → 48.1 %,
# wrong 11.7 → 18.2 %); at these, only the dragonfly.
CLOSER = 0.5
CLOSER_BARS = Bars(noun=0.9, thing=0.95, group=0.9, also=0.9)

SCHEMA = {
    "type": "object",
    "properties": {"caption": {"type": "string", "minLength": 20, "maxLength": 320}},
    "required": ["caption"],
    "additionalProperties": False,
}
SYSTEM = ("You write short, concrete photo captions for a children's storybook writer. "
          "Use only the facts given. Two sentences. Name the main subject; name no other animal or object, "
          "and say nothing of where it is. No names unless the owner gives them.")

# Where a subject is, which nothing here sees: a caption that names a place or furniture no fact gave invented it
# ("The cat is sleeping on the couch": the sample cat; "a dark, dimly lit room with black walls": a dahlia).
SETTING_WORDS = frozenset("""room rooms couch sofa bed floor table window windows wall walls ceiling furniture
garden park forest woods beach street road grass lawn sky house home kitchen lamp lamps blanket pillow carpet rug
chair shelf field meadow tree trees river lake sea ocean snow path yard porch garage office desk corner ground""".split())

# What someone wears or looks like, which no fact gives either: skimage's astronaut was captioned "A person in a warm,
# orange dress with soft brown hair and a face covered in black makeup", and the book's cover printed the makeup.
LOOK_WORDS = frozenset("""hair haired dress dresses shirt shirts makeup hat hats coat jacket eyes beard glasses smile
smiling smiles skirt uniform suit costume freckles""".split())

# Words about the task rather than the photo: an answer using them echoes the instructions.
META_WORDS = frozenset({"caption", "captions", "sentence", "sentences", "facts", "owner", "json", "modified",
                        "modification", "version", "original", "instructions", "subject"})
# Words inside concept names that say nothing of the photo ("notebook with decorative cover").
GLUE_WORDS = frozenset({"with", "and", "the", "for", "from", "without", "into", "over", "under"})


class EmbeddedCaptioner(Captioner):
    name = "embedded"

    class Options(BaseOptions):
        top_k: int = Field(5, ge=1, le=20, description="concepts taken from the aligned encoder")
        device: str = "auto"
        tries: int = Field(2, ge=1, le=5, description="LLM answers tried before the template is used")
        llm: str = Field("smollm2", description="LLM spec used when none is attached by the orchestrator; "
                                                "'none' words every caption with the template")
        classifier: Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "none"] = Field(
            "efficientnet-lite0", description="ImageNet classifier naming the subject; 'none' = emoji concepts only")
        threads: int = Field(1, ge=1, le=64, description="CPU threads for the classifier")
        objects: bool = Field(True, description="also look for people and everyday objects with a COCO detector "
                                                "(YOLOv4-tiny): ImageNet has no person, and misses small things")

    def __init__(self, location: str | None = None, model: str | None = None, encoder=None, imagenet=None,
                 **options):
        self.options = self.Options(**options)
        self.location = location
        # anything with top_concepts(image, k) -> [(name, score)] and nearest_concepts(text, k) -> [name]
        self._encoder = encoder
        # anything with probs(image) -> (1000,) ImageNet probabilities
        self._classifier = imagenet
        self._detector = None  # the COCO detector (coco_objects.py), loaded on first use
        self._llm_provider: Callable[[], TextModel] | None = None
        self.model_id = "embedded-captioner" if self.options.classifier == "none" else \
            f"embedded-captioner-{self.options.classifier}"

    # ---- wiring
    uses_llm = True  # the pool hands it the pooled LLM

    def use_llm(self, provider: Callable[[], TextModel] | TextModel) -> None:
        """Word captions with this LLM (or a callable giving it, so it is only loaded when needed)."""
        self._llm_provider = provider if callable(provider) and not isinstance(provider, TextModel) else (
            lambda: provider)

    def _llm(self) -> TextModel:
        if self._llm_provider is None:
            from taleloom.backends import registry

            llm = registry.create("llm", self.options.llm)
            self._llm_provider = lambda: llm
        return self._llm_provider()

    @property
    def encoder(self):
        if self._encoder is None:
            from taleloom.diffusion.aligned import load_aligned_encoder

            self._encoder = load_aligned_encoder(self.location, device=self.options.device)
        return self._encoder

    @property
    def classifier(self):
        if self._classifier is None:
            self._classifier = ImageNetClassifier(CONFIGS[self.options.classifier], threads=self.options.threads)
        return self._classifier

    @property
    def detector(self):
        if self._detector is None:
            from taleloom.backends.vision.coco_objects import CocoDetector

            self._detector = CocoDetector(threads=self.options.threads)
        return self._detector

    def ready(self) -> tuple[bool, str]:
        try:
            enc = self.encoder
            if self.options.classifier != "none":
                _ = self.classifier.net  # loads and checks the weights' sha256
            if self.options.objects and self.options.classifier != "none":
                _ = self.detector.model
        except Exception as e:  # missing checkpoint, missing wheel, damaged weights: say so
            return False, f"captioner unavailable: {e}"
        return True, f"{self.options.classifier} + aligned encoder with {len(getattr(enc, 'concepts', []) or [])} concepts"

    # ---- captioning
    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        size = list(image.size)
        image = working_copy(image)  # one small copy for every model: a 5,000 px photo costs what a 640 px one does
        facts = {**image_facts(image), "size": size}
        if hint:
            facts["owner_description"] = hint
        if self.options.classifier == "none":
            scored = list(self.encoder.top_concepts(image, self.options.top_k))
            concepts = [name for name, _ in scored]
            facts["concept_scores"] = {name: round(float(s), 4) for name, s in scored}
            phrases = concepts[:2]
        else:
            probs = self.classifier.probs(image)
            if self.options.objects:
                facts["objects"] = [{"noun": d.noun, "score": d.score, "area": d.area}
                                    for d in self.detector.detect(image)]
            subjects = name_subjects(probs, facts)
            if not subjects:  # a small subject in a big picture: look closer at its middle (CLOSER)
                closer = self.classifier.probs(image, middle=CLOSER)
                if subjects := name_subjects(closer, facts, CLOSER_BARS):
                    probs, facts["looked_closer"] = closer, CLOSER
            top = probs.argsort()[::-1][:5]
            facts["labels"] = {labels()[i].lemma: round(float(probs[i]), 4) for i in top}
            facts["subjects"] = [{"noun": s.noun, "phrase": s.phrase, "score": s.score, "level": s.level}
                                 for s in subjects]
            concepts = [s.noun for s in subjects]
            if subjects:  # what the embedded illustrator can draw of the subject (MiniLM text similarity)
                facts["drawable_concepts"] = list(self.encoder.nearest_concepts(subjects[0].noun, 3))
            phrases = [s.phrase for s in subjects]
        text, worded_by = self._word(concepts, phrases, facts, hint)
        facts["worded_by"] = worded_by  # the LLM's model id, or "template"
        return Caption(text=text, concepts=concepts, facts=facts, model_id=f"{self.model_id}+{worded_by}")

    def _word(self, concepts: list[str], phrases: list[str], facts: dict[str, Any],
              hint: str | None) -> tuple[str, str]:
        """(caption, who worded it): the LLM when one of its answers validates, else the template. A photo whose
        classifier named nothing gets the template: told to describe only colours and light, the LLM still set
        the scene ("a dark, dimly lit room with black walls" for sklearn's dahlia, "a room filled with pink and
        red lights" for an abstract wallpaper), and nothing it adds can be checked."""
        if facts.get("subjects") == [] and not hint:
            return template(phrases, facts), "template"
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt(phrases, facts, hint, named=bool(facts.get("subjects")))}]
        for attempt in range(self.options.tries if self.options.llm != "none" or self._llm_provider else 0):
            sampling = Sampling(temperature=0.3 + 0.3 * attempt, max_tokens=90, seed=attempt)
            try:
                llm = self._llm()
                answer = llm.chat(messages, sampling, schema=SCHEMA)
            except Exception:  # an LLM that cannot answer is one more reason for the template
                break
            text = validate(answer, concepts, facts, hint)
            if text:
                return merge_hint(text, hint), llm.model_id or llm.name
        return merge_hint(template(phrases, facts), hint), "template"


def prompt(phrases: list[str], facts: dict[str, Any], hint: str | None, named: bool = False) -> str:
    if named:
        lines = [f"Main subject of the photo: {phrases[0]}."]
        if len(phrases) > 1:
            lines.append(f"Also in the photo: {', '.join(phrases[1:])}.")
    elif "subjects" in facts:  # the classifier was not sure of anything
        lines = ["The main subject is unclear: describe the colours and light, and name no animal or object."]
    else:
        lines = [f"Things seen in the photo, most likely first: {', '.join(phrases) or 'unclear'}."]
    lines.append(f"Image facts: {describe_facts(facts) or 'none'}.")
    if hint:
        lines.append(f"The owner says: {hint}")
    lines.append('Write a two-sentence caption. Answer as JSON: {"caption": "..."}')
    return "\n".join(lines)


# Words a caption may use for a person; any other ImageNet noun not among the subjects is a wrong name.
PERSON_WORDS = frozenset({"person", "people", "man", "woman", "men", "women", "child", "children", "boy", "girl",
                          "someone", "player", "astronaut", "face", "faces"})
COLOUR_WORDS = frozenset(COLOUR_NAMES) | {"gold", "golden", "silver", "cream", "lemon"}


@functools.cache
def _object_words() -> frozenset[str]:
    """Single-word nouns of the ImageNet table ("dog", "otter", "bobsled"): naming one unasked is a guess."""
    words = {lab.noun.split()[-1] for lab in labels()}  # "cup of coffee" → "coffee"
    words |= {lab.lemma.lower().split()[-1] for lab in labels() if "animal" in ancestry(lab.group)}  # "tabby"
    return frozenset(w for w in words if w.isalpha()) - COLOUR_WORDS - {"light", "thing", "place", "food"}


def subject_words(phrases: list[str]) -> set[str]:
    """Words that name the subjects, singular and plural."""
    words = {w for p in phrases for w in re.findall(r"[a-z]+", p.lower()) if len(w) > 2}
    return words | {w + "s" for w in words} | {w + "es" for w in words}


# The photo's light said as the subject's feel: from "soft, warm light", Qwen captioned OpenCV's apple "The apple is
# soft and warm, with a golden color.", and the book's first page began with that sentence. Nothing here feels
# the subject; "the light is soft" and "in warm light" stay.
_FEEL = r"(?:soft|warm|cool|cold|dim|bright)"
_LIGHT_AS_THING = re.compile(rf"\b(?!light\b)[a-z]+\s+(?:is|are|looks?|feels?|seems?)\s+(?:very\s+|so\s+)?"
                             rf"{_FEEL}(?:\s*(?:,|and)\s*{_FEEL})*(?=\s*(?:[,.;!]|and\b|with\b|$))", re.IGNORECASE)


def names_colour_noun(text: str, phrase: str) -> bool:
    """Whether a caption names a subject whose noun is also a colour ("an orange", "a lemon") as the thing, not
    as a colour: Qwen captioned OpenCV's orange "A warm, sunny day with an orange sun.". The noun must end its
    noun phrase (punctuation, a function word, or a verb or adverb after it). True for any other subject."""
    noun = phrase.lower().split()[-1] if phrase.split() else ""
    if noun not in COLOUR_WORDS:
        return True
    return any(found.group(1) or ends_noun_phrase(text[found.end():])  # "oranges" are fruit too
               for found in re.finditer(rf"\b{re.escape(noun)}(e?s)?\b", text, re.IGNORECASE))


def validate(answer: str, concepts: list[str], facts: dict[str, Any], hint: str | None) -> str | None:
    """The caption if it is usable: JSON with text of sensible length, on topic, naming the main subject and no
    other object, not a loop of words."""
    try:
        data = json.loads(answer)
    except (TypeError, ValueError):
        return None
    text = data.get("caption") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    if not 20 <= len(text) <= 320 or re.search(r"[{}<>\[\]()]|https?://|^\W", text):
        return None
    words = re.findall(r"[a-z']+", text.lower())
    if META_WORDS & set(words):  # "a slightly modified version of the original sentence...": the task, not the photo
        return None
    if len(words) < 4 or len(set(words)) / len(words) < 0.5:  # "cat cat cat cat"
        return None
    if _LIGHT_AS_THING.search(text):  # the light said of the subject: "The apple is soft and warm"
        return None
    commas = text.count(",")
    if commas >= 4 and len(words) < 3 * commas:  # "The bear, otter, squid, lab coat, ...": a list, not a caption
        return None
    hinted = set(re.findall(r"[a-z]+", (hint or "").lower()))
    if "subjects" in facts:  # classifier path: the main subject must be named, no other object may be
        subjects = [s["phrase"] for s in facts["subjects"]]
        allowed = subject_words(subjects) | hinted | (PERSON_WORDS if "person" in concepts or "people" in concepts
                                                      else set())
        if subjects and not (subject_words([subjects[0]]) | hinted) & set(words) - GLUE_WORDS:
            return None
        if subjects and not hinted and not names_colour_noun(text, subjects[0]):
            return None
        if (_object_words() | PERSON_WORDS | SETTING_WORDS | LOOK_WORDS) & set(words) - allowed:
            return None
    else:
        topic = {w for c in concepts for w in re.findall(r"[a-z]+", c.lower()) if len(w) > 2 and w not in GLUE_WORDS}
        topic |= {c["name"] for c in facts.get("colours", [])}
        topic |= hinted
        if topic and not topic & set(words):
            return None
    return text if text.endswith((".", "!", "?")) else text + "."


def template(phrases: list[str], facts: dict[str, Any]) -> str:
    """Deterministic wording of the same facts, used only when the LLM's answers fail validation:
    'A photo of a cat, in brown and white tones, in soft, warm light.'"""
    things = phrases[:2]
    text = f"A photo of {' and '.join(things)}" if things else "A photo"
    colours = [c["name"] for c in facts.get("colours", [])][:2]
    if colours:
        text += f"{',' if things else ''} in {' and '.join(colours)} tones"
    text += f", in {facts['light']}." if facts.get("light") else "."
    said_people = any(s.get("level") == "person" for s in facts.get("subjects", []))
    faces, cats = 0 if said_people else facts.get("faces", 0), facts.get("cat_faces", 0)
    if faces or cats:
        seen = [count(n, w) for n, w in ((faces, "face"), (cats, "cat face")) if n]
        text += f" It shows {' and '.join(seen)}."
    return text


def merge_hint(text: str, hint: str | None) -> str:
    """The owner's description comes first: it is the one source that knows names and facts."""
    if not hint or not hint.strip():
        return text
    hint = hint.strip()
    return f"{hint if hint.endswith(('.', '!', '?')) else hint + '.'} {text}"
