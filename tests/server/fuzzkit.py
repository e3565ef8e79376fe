"""Fuzzing a real `taleloom serve` process: Schemathesis over the server's own OpenAPI schema, plus a
corpus of hostile image files sent to every route that takes an image. Used by the default test suite
(a few hundred requests, tests/server/test_server_fuzz.py) and by benchmarks/fuzz_service.py (thousands).

What counts: every answer's status, every 5xx (with the request that caused it), every death of the
server process (it is started again and the run goes on), and the server's peak resident memory
(VmHWM, read from /proc).
"""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from serverkit import Server, photo_bytes

# the server the fuzz runs against: fast test backends, one book worker, a queue deep enough that every
# uploaded photo is decoded (a full queue would answer 429 before looking at it)
FUZZ_ENV = {"TALELOOM_WORKERS": "1", "TALELOOM_MAX_QUEUE_PER_USER": "100000", "TALELOOM_MAX_QUEUE_TOTAL": "100000",
            "TALELOOM_MAX_STEPS_PER_USER": "8", "TALELOOM_HEADER_TIMEOUT": "5", "TALELOOM_BODY_TIMEOUT": "20"}


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[dict] = field(default_factory=list)  # every 5xx: what was sent, what came back
    transport_errors: list[dict] = field(default_factory=list)  # no answer at all
    deaths: list[dict] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    generation_notes: list[dict] = field(default_factory=list)  # operations Schemathesis could not vary

    def record(self, what: str, status: int | None, body: str = "") -> None:
        self.requests += 1
        self.statuses[str(status) if status is not None else "no answer"] += 1
        if status is None:
            self.transport_errors.append({"request": what, "error": body[:300]})
        elif status >= 500:
            self.server_errors.append({"request": what, "status": status, "body": body[:300]})

    def summary(self) -> dict:
        return {"requests": self.requests, "statuses": dict(sorted(self.statuses.items())),
                "5xx": sum(n for s, n in self.statuses.items() if s[0] == "5"),
                "no_answer": self.statuses.get("no answer", 0), "process_deaths": len(self.deaths),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "server_errors": self.server_errors[:50],
                "transport_errors": self.transport_errors[:20], "deaths": self.deaths,
                "generation_notes": self.generation_notes}


class Watched:
    """The server under fuzz: notices when its process has died (records it, starts another on the
    same data folder) and samples its peak memory."""

    def __init__(self, data_dir: Path, tally: Tally, env: dict[str, str] | None = None):
        self.tally = tally
        self.env = {**FUZZ_ENV, **(env or {})}
        self.server = Server(data_dir, env=self.env).start()
        self.token = self.server.token("fuzz")

    @property
    def url(self) -> str:
        return self.server.url

    def check(self, during: str) -> None:
        self.sample_rss()
        proc = self.server.proc
        if proc is not None and proc.poll() is not None:
            self.tally.deaths.append({"during": during, "returncode": proc.returncode,
                                      "log_tail": self.server.log.read_text(errors="replace")[-1500:]})
            self.server = Server(self.server.data_dir, env=self.env, port=self.server.port).start()

    def sample_rss(self) -> None:
        proc = self.server.proc
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except (OSError, AttributeError):
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):  # the process's peak resident set so far
                self.tally.peak_rss_mb = max(self.tally.peak_rss_mb, int(line.split()[1]) / 1024)

    def stop(self) -> None:
        self.sample_rss()
        self.server.stop()


# ------------------------------------------------------------------------------ hostile files

def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, body: bytes = b"\0" * 64, mode: int = 2) -> bytes:
    """A PNG whose header declares width×height, with `body` (raw scanlines) deflated as its data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(body, 9)) + _chunk(b"IEND", b"")


def zlib_bomb_png(side: int) -> bytes:
    """A real grey PNG of side×side zero pixels: a few kB that decode to side² bytes."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    parts = [comp.compress(row) for _ in range(side)] + [comp.flush()]
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen is width×height, holding one 1×1 frame."""
    head = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return head + frame + b"\x3b"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to claim width×height."""
    data = bytearray(photo_bytes((64, 64)))
    i = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def exif_rotated(orientation: int) -> bytes:
    img = Image.new("RGB", (120, 80), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(img, "JPEG", exif=exif.tobytes())


def hostile_corpus(seed: int = 0, mutants: int = 40) -> dict[str, bytes]:
    """Files a careless or hostile client sends as a photo, a picture or a mask."""
    rng = random.Random(seed)
    noise = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    ok_png, ok_jpg = _png(noise), _save(noise, "JPEG", quality=90)
    frames = [Image.new("P", (64, 64), i % 256) for i in range(200)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)
    apng = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(apng, format="PNG", save_all=True,
                                      append_images=[Image.new("RGBA", (64, 64), (i, 0, 0, 255)) for i in range(20)])
    deep = Image.fromarray(np.arange(128 * 96, dtype=np.uint16).reshape(96, 128) * 5)  # mode I;16
    corpus = {
        "ok.png": ok_png, "ok.jpg": ok_jpg,
        "zero-bytes.png": b"",
        "truncated.jpg": ok_jpg[: len(ok_jpg) // 2], "truncated.png": ok_png[: len(ok_png) // 2],
        "header-only.png": ok_png[:40], "magic-only.jpg": b"\xff\xd8\xff",
        "bomb-header-30000.png": png_declaring(30000, 30000),
        "bomb-header-max.png": png_declaring(0x7FFFFFFF, 0x7FFFFFFF),
        "bomb-zlib-5000.png": zlib_bomb_png(5000),  # 25 million real pixels: under the limit, decoded
        "bomb-zlib-7000.png": zlib_bomb_png(7000),  # 49 million: refused from the header
        "bomb-gif-65535.gif": gif_declaring(65535, 65535),
        "bomb-jpeg-65000.jpg": jpeg_declaring(65000, 65000),
        "strip-10000x20.png": _png(Image.new("RGB", (10000, 20))),
        "one-pixel.png": _png(Image.new("RGB", (1, 1))),
        "zero-width.png": png_declaring(0, 100),
        "cmyk.jpg": _save(Image.new("CMYK", (128, 96), (10, 200, 30, 0)), "JPEG"),
        "cmyk.tiff": _save(Image.new("CMYK", (128, 96), (10, 200, 30, 0)), "TIFF"),
        "16-bit.png": _png(deep), "16-bit.tiff": _save(deep, "TIFF"),
        "float.tiff": _save(Image.fromarray(np.linspace(0, 1, 96 * 128, dtype=np.float32).reshape(96, 128)), "TIFF"),
        "one-bit.png": _png(Image.new("1", (128, 96), 1)),
        "palette-alpha.png": _png(Image.new("P", (128, 96), 3), transparency=3),
        "grey-alpha.png": _png(Image.new("LA", (128, 96), (100, 0))),
        "animated-200.gif": gif.getvalue(), "animated.png": apng.getvalue(),
        "webp.webp": _save(noise, "WEBP"), "bmp.bmp": _save(noise, "BMP"),
        "ico.ico": _save(noise, "ICO"), "tga.tga": _save(noise, "TGA"), "pcx.pcx": _save(noise, "PCX"),
        "pdf.pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "svg.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='100000' height='100000'><rect/></svg>",
        "svg-entities.svg": b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><svg>&b;</svg>",
        "polyglot-gif-js.gif": b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert(1);//" + b"\0" * 20 + b";",
        "polyglot-jpeg-zip.jpg": ok_jpg + b"PK\x03\x04" + b"\0" * 26 + b"evil.txt" + b"PK\x05\x06" + b"\0" * 18,
        "polyglot-png-html.png": ok_png + b"<html><script>alert(1)</script></html>",
        "html-with-png-magic.png": b"\x89PNG\r\n\x1a\n<html><body>not a png</body></html>",
        "text.png": b"just some text, not a picture\n" * 10,
        "random.bin": bytes(rng.getrandbits(8) for _ in range(4096)),
        "tiff-declaring-huge.tiff": _tiff_declaring(100000, 100000),
    }
    for o in (3, 6, 8, 9):
        corpus[f"exif-orientation-{o}.jpg"] = exif_rotated(o)
    bases = [("png", ok_png), ("jpg", ok_jpg), ("gif", gif.getvalue()[:4000]), ("webp", corpus["webp.webp"]),
             ("tiff", corpus["cmyk.tiff"]), ("bmp", corpus["bmp.bmp"])]
    for i in range(mutants):  # seeded byte flips in real files: decoders' error paths
        ext, base = bases[i % len(bases)]
        data = bytearray(base)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(min(len(data), 600) if i % 2 else len(data))] = rng.getrandbits(8)
        corpus[f"mutant-{i:03d}.{ext}"] = bytes(data)
    return corpus


def _tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian TIFF whose IFD claims width×height, one strip of 8 bytes."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0" * 8


# ------------------------------------------------------------------------------ senders

IMAGE_SLOTS = ("books.photo", "captions.image", "edits.image", "edits.mask")


def send_image(client: httpx.Client, slot: str, name: str, data: bytes) -> httpx.Response:
    ok = photo_bytes((128, 128), fmt="PNG")
    kind = "image/png"
    if slot == "books.photo":
        return client.post("/v1/books", data={"pages": "1"}, files={"photo": (name, data, kind)})
    if slot == "captions.image":
        return client.post("/v1/captions", files={"image": (name, data, kind)})
    form = {"prompt": "a red kite", "size": "64x64"}
    if slot == "edits.image":
        return client.post("/v1/images/edits", data=form, files={"image": (name, data, kind)})
    return client.post("/v1/images/edits", data=form, files={"image": ("ok.png", ok, kind), "mask": (name, data, kind)})


def fuzz_files(target: Watched, tally: Tally, corpus: dict[str, bytes], rounds: int = 1, threads: int = 4) -> None:
    """Every file of the corpus to every image slot, `rounds` times, from `threads` clients at once."""
    jobs = [(slot, name) for _ in range(rounds) for slot in IMAGE_SLOTS for name in corpus]

    def one(job: tuple[str, str]) -> None:
        slot, name = job
        with httpx.Client(base_url=target.url, headers={"Authorization": f"Bearer {target.token}"},
                          timeout=60) as client:
            try:
                r = send_image(client, slot, name, corpus[name])
                tally.record(f"{slot} {name}", r.status_code, r.text if r.status_code >= 500 else "")
            except httpx.HTTPError as e:
                tally.record(f"{slot} {name}", None, f"{type(e).__name__}: {e}")

    for start in range(0, len(jobs), 64):
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, jobs[start:start + 64]))
        target.check(f"hostile files, batch from {start}")


def fuzz_schema(target: Watched, tally: Tally, examples: int, seed: int = 0,
                modes: tuple[str, ...] = ("positive", "negative"), deadline_s: float | None = None) -> None:
    """Schemathesis: `examples` generated requests per operation and mode, from the server's own
    OpenAPI schema. Half the examples of routes on a book use a real book of the caller's."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json", timeout=30)
    ops = [r.ok() for r in schema.get_all_operations()]
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}  # delete the books last
    ops.sort(key=lambda op: order.get(op.method.upper(), 1))
    auth = {"Authorization": f"Bearer {target.token}"}
    with httpx.Client(base_url=target.url, headers=auth, timeout=60) as client:
        real = [client.post("/v1/books", data={"pages": "1", "seed": str(i)},
                            files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}).json()["id"] for i in range(2)]
        for book in real:  # finished books: their event streams end at once
            while client.get(f"/v1/books/{book}").json()["status"] not in ("done", "failed"):
                time.sleep(0.1)
    started = time.monotonic()
    for op in ops:
        for mode in modes:
            for fixed in (None, {"book_id": real[0]}) if "{book_id}" in op.path else (None,):
                if deadline_s is not None and time.monotonic() - started > deadline_s:
                    return
                what = f"{op.method.upper()} {op.path} ({mode}{', real book' if fixed else ''})"
                strategy = op.as_strategy(GenerationMode(mode), path_parameters=fixed) if fixed else \
                    op.as_strategy(GenerationMode(mode))

                run = _runner(target, tally, what, auth)
                run = seeded(seed)(settings(max_examples=max(1, examples // (2 if "{book_id}" in op.path else 1)),
                                            deadline=None, database=None, phases=[Phase.generate],
                                            suppress_health_check=list(HealthCheck), report_multiple_bugs=False)(
                    given(case=strategy)(run)))

                try:
                    run()
                except Exception as e:  # generation itself gave up on this operation: say so, go on
                    tally.generation_notes.append({"request": what, "note": f"{type(e).__name__}: {e}"[:200]})
                target.check(what)


def _runner(target: Watched, tally: Tally, what: str, auth: dict[str, str]):
    def run(case) -> None:
        try:
            r = case.call(base_url=target.url, headers=auth, timeout=60)
            tally.record(what, r.status_code, r.text if r.status_code >= 500 else "")
        except Exception as e:  # no answer (connection refused, reset, timeout)
            tally.record(what, None, f"{type(e).__name__}: {e}")

    return run
