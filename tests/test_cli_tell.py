"""`taleloom tell`, `book`, `caption`, `narrate`, `models` through click's CliRunner, on stand-in backends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from book_doubles import FAKE_TEXT, CountingLLM, FakeCaptioner, FakeIllustrator, FakeUpscaler
from taleloom.backends import registry
from taleloom.cli import cli
from taleloom.errors import BadInputError
from taleloom.orchestrator import Backends

CAT = str(Path(__file__).parents[1] / "src/taleloom/assets/samples/cat.jpg")


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    made = {}

    def from_settings(cls, settings):
        made["settings"] = settings
        return cls(settings, functions=FAKE_TEXT, captioner=FakeCaptioner(), llm=CountingLLM(), illustrator=made.get("illustrator")
                   or FakeIllustrator(), upscaler=FakeUpscaler(), narrator=registry.create("narrator", "espeak"))

    monkeypatch.setattr(Backends, "from_settings", classmethod(from_settings))
    return made


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def test_tell_json_makes_a_book(tmp_path, fakes):
    r = invoke("tell", CAT, "--pages", 2, "--lang", "KO", "--style", "watercolor", "--hero", "Mina", "--age", 6,
               "--seed", 7, "--temperature", 0.4, "--top-k", 20, "--out", tmp_path, "--link", "http://x.test/my-book",
               "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    d = Path(data["dir"])
    assert data["complete"] and data["pages"] == 2 and data["url"] == "http://x.test/my-book"
    assert Path(data["files"]["pdf"]).is_file() and set(data["stages"]) >= {"see", "write", "bind"}
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["brief"] == {**manifest["brief"], "pages": 2, "lang": "ko", "style": "watercolor", "seed": 7}
    assert manifest["pages"][0]["request"]["style"] == "watercolor"
    sampling = manifest["stages"]["write"]["params"]["sampling"]  # what the writer sampled with, flags included
    assert (sampling["temperature"], sampling["top_k"], sampling["top_p"], sampling["seed"]) == (0.4, 20, 0.95, 7)


def test_tell_prints_a_timing_table(tmp_path):
    r = invoke("tell", "--idea", "a cat who flies", "--pages", 1, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert "Timing" in r.output and "illustrate" in r.output and "total" in r.output and "book.pdf" in r.output


@pytest.mark.parametrize("args, message", [
    (["--pages", "0"], "--pages 0"),
    (["--pages", "99"], "--pages 99"),
    (["--style", "cubist"], "unknown style 'cubist'"),
    (["--lang", "tlh"], "unknown language 'tlh'"),
])
def test_tell_bad_options(tmp_path, args, message):
    r = invoke("tell", CAT, "--out", tmp_path, *args)
    assert isinstance(r.exception, BadInputError) and message in str(r.exception)
    assert not any(tmp_path.iterdir()), "a refused book leaves nothing behind"


def test_tell_needs_photo_or_idea_and_a_real_photo(tmp_path):
    r = invoke("tell", "--out", tmp_path)
    assert isinstance(r.exception, BadInputError) and "photo, an idea" in str(r.exception)
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    r = invoke("tell", bad, "--out", tmp_path)
    assert isinstance(r.exception, BadInputError) and "notes.txt" in str(r.exception)


def test_resume_and_book_edits(tmp_path, fakes):
    fakes["illustrator"] = FakeIllustrator(fail_after=0)
    r = invoke("tell", CAT, "--pages", 2, "--out", tmp_path, "--json")
    assert isinstance(r.exception, RuntimeError)
    d = next(tmp_path.iterdir())
    fakes.pop("illustrator")
    r = invoke("tell", "--resume", d, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["complete"]
    r = invoke("book", "redraw", d, 1, "--seed", 5, "--json")
    assert r.exit_code == 0, r.output
    r = invoke("book", "rewrite", d, 2, "-i", "make it rhyme", "--json")
    assert r.exit_code == 0, r.output
    r = invoke("book", "extend", d, "--pages", 1, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["pages"] == 3
    r = invoke("book", "show", d, "--json")
    assert [h["action"] for h in json.loads(r.output)["history"]] == ["redraw", "rewrite", "extend"]
    r = invoke("tell", CAT, "--resume", d)
    assert r.exit_code != 0 and "--resume" in r.output


def test_caption_and_narrate(tmp_path):
    r = invoke("caption", CAT, "--description", "our cat Mina", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["text"].endswith("our cat Mina")
    out = tmp_path / "n.wav"
    r = invoke("narrate", "Once upon a time.", "--lang", "en", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["seconds"] > 0
    r = invoke("narrate", "hello", "--lang", "tlh", "--out", out)
    assert isinstance(r.exception, BadInputError) and "no voice" in str(r.exception)


def test_models_lists_every_backend_without_touching_the_network():
    r = invoke("models", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {(x["role"], x["name"]) for x in rows} >= {("narrator", "espeak"), ("narrator", "piper"),
                                                      ("illustrator", "embedded")}
    espeak = next(x for x in rows if x["name"] == "espeak")
    piper = next(x for x in rows if x["name"] == "piper")
    assert espeak["ready"] and piper["in_use"] and piper["ready"]


def test_errors_print_one_line_not_a_traceback(tmp_path):
    taleloom = Path(sys.executable).parent / "taleloom"
    r = subprocess.run([str(taleloom), "tell", "--out", str(tmp_path), "--style", "cubist", "--idea", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "unknown style 'cubist'" in r.stderr


def test_a_cli_book_without_a_link_has_no_dead_qr_code(tmp_path):
    """A book made here is on no server, so `/books/<its id>` would open nothing: without --link it has no QR
    code and its back page claims no online copy; with --link the QR code points exactly there."""
    r = invoke("tell", "--idea", "a cat who flies", "--pages", 1, "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    d = Path(data["dir"])
    assert data["url"] is None and "qr" not in data["files"] and not (d / "qr.png").exists()
    from pypdf import PdfReader

    back = PdfReader(data["files"]["pdf"]).pages[-1].extract_text()
    assert "Made with Taleloom" in back and "online" not in back
