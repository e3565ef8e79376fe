"""The backend pool: registration (classes, "module:Class" strings, factories) gives every backend that takes
one the configured device, plugins included; one wrapper creates lazily, meters model time per stage and
limits concurrency; capabilities are declared, and a captioner that words with the LLM gets the pooled LLM."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image
from pydantic import Field

from taleloom.backends import registry
from taleloom.backends.base import Captioner, Illustrator, Narrator, Options, TextModel
from taleloom.backends.pool import Pool, metered
from taleloom.book import Caption, ImageRequest
from taleloom.config import Settings
from taleloom.errors import BadInputError
from taleloom.stages.stage import concept_mapper_for


class DeviceLLM(TextModel):
    """A plugin-style backend whose Options take a device."""

    name = "device-llm"

    class Options(Options):
        device: str = Field("cpu")

    def __init__(self, location=None, model=None, **options):
        self.options = self.Options(**options)
        self.model_id = f"device-llm@{self.options.device}"

    def chat(self, messages, sampling=None, schema=None):
        time.sleep(0.01)
        return "ok"


class WordingCaptioner(Captioner):
    name = "wording"
    uses_llm = True

    def __init__(self, location=None, model=None, **options):
        self.llm = None

    def use_llm(self, llm):
        self.llm = llm

    def caption(self, image, hint=None):
        return Caption(text=self.llm.chat([{"role": "user", "content": "word it"}]))


def settings(**kw) -> Settings:
    return Settings(device="cuda:7", **kw)  # a device no test machine has: only passed on, never used


def test_every_backend_that_takes_a_device_gets_it_plugins_included():
    registry.register("llm", "test-device-class", DeviceLLM)
    registry.register("llm", "test-device-string", f"{__name__}:DeviceLLM")
    registry.register("llm", "test-device-factory", lambda location, model, device: DeviceLLM(device=device))
    registry.register("llm", "test-no-device", lambda location, model: DeviceLLM())
    for name, device in [("test-device-class", "cuda:7"), ("test-device-string", "cuda:7"),
                         ("test-device-factory", "cuda:7"), ("test-no-device", "cpu")]:
        assert Pool(settings(llm=name)).llm.model_id == f"device-llm@{device}", name
    given = Pool(settings(llm="test-device-class", backend_options={"llm": {"device": "cpu"}}))
    assert given.llm.model_id == "device-llm@cpu"  # a device in the role's options wins


def test_backends_are_created_on_first_use_and_metered_per_stage():
    registry.register("llm", "test-device-class", DeviceLLM)
    pool = Pool(settings(llm="test-device-class"))
    llm = pool.llm
    assert not pool.loaded("llm") and pool.get("llm") is llm
    with metered() as meter:
        assert llm.chat([{"role": "user", "content": "hi"}]) == "ok"
    assert pool.loaded("llm") and meter.used == {"llm": llm} and meter.seconds > 0
    with metered() as other:
        pass
    assert other.used == {} and other.seconds == 0  # each stage has its own meter
    with pytest.raises(BadInputError, match="unknown backend role"):
        pool.get("painter")


def test_a_captioner_that_words_with_the_llm_gets_the_pooled_llm():
    registry.register("captioner", "test-wording", WordingCaptioner)
    registry.register("llm", "test-device-class", DeviceLLM)
    pool = Pool(settings(captioner="test-wording", llm="test-device-class"))
    assert pool.captioner.caption(Image.new("RGB", (8, 8))).text == "ok"
    assert pool.captioner.inner.llm is pool.llm  # one backend object, behind the LLM's limit: no closure


def test_the_limit_holds_calls_to_one_at_a_time():
    active, peak = [0], [0]

    class Watched(DeviceLLM):
        def chat(self, messages, sampling=None, schema=None):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            time.sleep(0.02)
            active[0] -= 1
            return "ok"

    pool = Pool(settings(), limits={"llm": 1}, llm=Watched())
    threads = [threading.Thread(target=pool.llm.chat, args=([],)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1


def test_capabilities_are_declared_not_probed():
    class Prompts(Illustrator):
        name = "prompts"

        def generate(self, requests):
            return [Image.new("RGB", (8, 8)) for _ in requests]

        def nearest_concepts(self, text, k=5):  # present, but the class does not declare draws_concepts
            return ["cat"]

    class Concepts(Prompts):
        draws_concepts = True

    assert concept_mapper_for(Prompts()) is None and concept_mapper_for(Concepts())("x", 1) == ["cat"]
    pool = Pool(settings(), illustrator=Concepts())
    assert concept_mapper_for(pool.illustrator)("x", 1) == ["cat"]
    assert pool.illustrator.generate([ImageRequest(prompt="a")])[0].size == (8, 8)

    class EnglishOnly(Narrator):
        name = "english-only"

        def languages(self):
            return {"en"}

        def speak(self, text, language):
            return b""

    class Streams(DeviceLLM):
        can_stream = True

    big = Concepts()
    big.max_batch = 16  # an instance's own value (a diffusers backend sets it from its options)
    pool = Pool(settings(), llm=Streams(), illustrator=big)
    assert pool.llm.can_stream is True and Pool(settings(), llm=DeviceLLM()).llm.can_stream is False
    assert pool.illustrator.max_batch == 16 and pool.illustrator.draws_concepts is True

    assert EnglishOnly().voice_for("en") == "en"
    with pytest.raises(BadInputError, match="cannot read language 'ko'"):
        Pool(settings(), narrator=EnglishOnly()).narrator.voice_for("ko")


def test_two_threads_never_see_a_half_filled_registry(monkeypatch):
    """The orchestrator builds the LLM on a thread while the see stage builds the captioner: the second
    thread to look a backend up waits for the entry points to finish registering (a book once failed with
    "unknown captioner backend 'embedded' → choose one of: " and nothing listed)."""
    import threading
    import time

    from taleloom.backends import registry

    class SlowEntryPoint:
        def load(self):
            def register_all(register):
                register("llm", "slow-llm", object)
                time.sleep(0.3)  # the first thread is still registering when the second one asks
                register("captioner", "slow-captioner", object)
            return register_all

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [SlowEntryPoint()])
    found, errors = [], []

    def look(role, name):
        try:
            found.append(registry.entry(role, name).name)
        except Exception as e:  # collected for the assertion
            errors.append(e)

    first = threading.Thread(target=look, args=("llm", "slow-llm"))
    first.start()
    time.sleep(0.1)
    look("captioner", "slow-captioner")
    first.join()
    assert not errors and sorted(found) == ["slow-captioner", "slow-llm"]
