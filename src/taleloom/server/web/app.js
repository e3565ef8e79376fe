// Taleloom web page: plain JS, no build step.
// Owner mode ("/", "/#book=ID"): token in localStorage, make a book, follow it live (SSE over fetch,
// so the bearer token goes in a header), read, edit, download. Shared mode ("/books/SHARE_ID"):
// the same reader, read-only, no token.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "taleloom.token";
const STAGE_LABELS = {
  see: "Looking at the photo", write: "Writing the story", translate: "Translating",
  stage: "Planning the pictures", illustrate: "Drawing the pictures", upscale: "Sharpening the pictures",
  narrate: "Reading it aloud", bind: "Binding the book",
};
const sharedMatch = location.pathname.match(/^\/books\/([A-Za-z0-9_-]+)$/);
const state = { shared: sharedMatch ? sharedMatch[1] : null, book: null, page: 0, blobs: new Map(), following: null,
                lang: null };

// --- HTTP -------------------------------------------------------------------------------------
const token = () => localStorage.getItem(TOKEN_KEY) || "";
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (res.status === 401 && !state.shared) showToken("Your token was not accepted. Paste a valid one.");
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    const err = new Error([body.message || `${res.status} ${res.statusText}`, body.hint].filter(Boolean).join("\n→ "));
    err.status = res.status;
    throw err;
  }
  return res;
}
const getJSON = async (path) => (await api(path)).json();
const postJSON = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body || {}) });

// Media of an owner's book need the token: fetch them and hand the element a blob URL.
async function mediaURL(url) {
  if (!url || state.shared) return url || "";
  if (!state.blobs.has(url)) {
    const made = api(url).then((r) => r.blob()).then((b) => URL.createObjectURL(b));
    made.catch(() => state.blobs.delete(url)); // not there (yet): ask again next time
    state.blobs.set(url, made);
  }
  return state.blobs.get(url).catch(() => "");
}

// --- token ------------------------------------------------------------------------------------
function showToken(message) {
  $("token-panel").hidden = false;
  $("token-error").textContent = message || "";
  $("token-input").focus();
}
$("token-button").addEventListener("click", () => showToken());
$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
  try {
    await api("/v1/books");
    $("token-panel").hidden = true;
    $("token-input").value = "";
    loadLibrary();
  } catch (e) {
    showToken(e.message);
  }
});

// --- the form ---------------------------------------------------------------------------------
async function loadOptions() {
  const opts = await (await fetch("/v1/options")).json();
  const fill = (select, entries, chosen) => {
    select.innerHTML = "";
    for (const [value, text, title] of entries) {
      const o = document.createElement("option");
      o.value = value; o.textContent = text; o.title = title || ""; o.selected = value === chosen;
      select.append(o);
    }
  };
  fill($("lang"), Object.entries(opts.languages).map(([c, n]) => [c, n, c]), "en");
  fill($("translate-lang"), Object.entries(opts.languages).map(([c, n]) => [c, n, c]), "fr");
  state.languages = opts.languages;
  fill($("style"), Object.entries(opts.styles).map(([n, d]) => [n, n[0].toUpperCase() + n.slice(1), d]),
       opts.default_style);
  $("pages").max = opts.max_pages;
}

let photoFile = null;
function setPhoto(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) { $("form-error").textContent = `${file.name} is not a picture.`; return; }
  photoFile = file;
  const img = $("preview");
  img.src = URL.createObjectURL(file);
  img.alt = `Your photo: ${file.name}`;
  img.hidden = false;
  $("drop-text").textContent = file.name;
  $("form-error").textContent = "";
}
$("photo").addEventListener("change", (ev) => setPhoto(ev.target.files[0]));
const drop = $("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (ev) => { ev.preventDefault(); setPhoto(ev.dataTransfer.files[0]); });

$("book-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!token()) { showToken("A token is needed to make a book."); return; }
  const form = new FormData();
  if (photoFile) form.append("photo", photoFile, photoFile.name);
  for (const id of ["lang", "style", "pages", "hero", "idea"]) {
    if ($(id).value.trim()) form.append(id, $(id).value.trim());
  }
  if (!photoFile && !$("idea").value.trim()) {
    $("form-error").textContent = "Choose a photo, or write a story idea.";
    return;
  }
  $("make-button").disabled = true;
  $("form-error").textContent = "";
  try {
    const book = await (await api("/v1/books", { method: "POST", body: form })).json();
    location.hash = `book=${book.id}`;
    openBook(book.id);
    loadLibrary();
  } catch (e) {
    $("form-error").textContent = e.message;
  } finally {
    $("make-button").disabled = false;
  }
});

// --- progress (server-sent events read through fetch) -------------------------------------------
function renderStages(stages, current) {
  const list = $("stages");
  const byName = Object.fromEntries((stages || []).map((s) => [s.name, s]));
  list.innerHTML = "";
  for (const [name, label] of Object.entries(STAGE_LABELS)) {
    const s = byName[name] || { status: "pending" };
    const li = document.createElement("li");
    li.dataset.stage = name;
    li.dataset.status = s.status;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = s.status === "done" || s.status === "skipped" ? 1 : 0;
    bar.setAttribute("aria-label", `${label} progress`);
    li.innerHTML = `<span class="mark" aria-hidden="true"></span><span class="label"></span>`;
    li.querySelector(".label").textContent = `${label}${s.status === "pending" ? "" : ` — ${s.status}`}`;
    li.append(bar);
    list.append(li);
  }
  if (current) stageEvent(current);
}

function stageEvent(ev) {
  const li = $("stages").querySelector(`li[data-stage="${ev.stage}"]`);
  if (!li) return;
  const label = STAGE_LABELS[ev.stage] || ev.stage;
  const status = { started: "running", progress: "running", finished: "done", failed: "failed", done: "done" }[ev.kind];
  if (status) li.dataset.status = status;
  const bar = li.querySelector("progress");
  if (ev.kind === "finished" || ev.kind === "done") bar.value = 1;
  else if (typeof ev.progress === "number") bar.value = ev.progress;
  else if (ev.kind === "started") bar.removeAttribute("value"); // indeterminate until the first progress
  li.querySelector(".label").textContent = `${label} — ${ev.message || li.dataset.status}`;
}

async function follow(id) {
  state.following = id;
  while (state.following === id) {
    let finished = false;
    try {
      const res = await api(`/v1/books/${id}/events`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || state.following !== id) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const kind = (block.match(/^event: (.*)$/m) || [])[1];
          const data = (block.match(/^data: (.*)$/m) || [])[1];
          if (!kind || !data) continue;
          finished = onEvent(id, kind, JSON.parse(data)) || finished;
        }
      }
    } catch (e) {
      $("progress-error").textContent = e.message;
      if (e.status && e.status < 500) return;
    }
    if (finished) return;
    await new Promise((r) => setTimeout(r, 1500)); // dropped connection: pick up where it stopped
  }
}

function onEvent(id, kind, data) {
  if (kind === "snapshot") {
    showBook(data);
    return data.status === "done" || data.status === "failed";
  }
  if (kind === "status") {
    if (data.status === "done" || data.status === "failed") { refresh(id); return true; }
    $("progress-heading").textContent = data.status === "queued" ? "Waiting for a free worker…" : "Making your book…";
    return false;
  }
  stageEvent(data);
  return false;
}

async function refresh(id) {
  showBook(await getJSON(state.shared ? `/v1/shared/${state.shared}` : `/v1/books/${id}`));
  loadLibrary();
}

// --- the book ---------------------------------------------------------------------------------
function showBook(book) {
  state.book = book;
  const busy = book.status === "queued" || book.status === "running";
  $("progress-panel").hidden = !(busy || book.status === "failed");
  $("progress-heading").textContent = book.status === "failed" ? "The book could not be finished"
    : book.status === "queued" ? "Waiting for a free worker…" : "Making your book…";
  $("progress-error").textContent = book.error ? [book.error.message, book.error.hint].filter(Boolean).join("\n→ ") : "";
  renderStages(book.stages, book.current);
  const readable = book.pages.length > 0 && book.pages.some((p) => p.image);
  $("book-panel").hidden = !readable && book.status !== "done";
  $("book-title").textContent = book.title || "Your book";
  $("book-notice").textContent = book.notice || "";  // the text is not (all) in the reader's language
  $("book-notice").hidden = !book.notice;
  if (book.title) document.title = `${book.title} — Taleloom`;
  state.page = Math.min(state.page, Math.max(0, book.pages.length - 1));
  for (const id of ["redraw", "extend"]) $(id).disabled = busy;
  for (const el of $("rewrite-form").elements) el.disabled = busy;  // one change at a time (the API answers 409)
  for (const el of $("translate-form").elements) el.disabled = busy;
  showEditions(book);
  showLanguages(book);
  showPage();
  showShare(book);
}

async function showPage() {
  const book = state.book;
  if (!book || !book.pages.length) return;
  const p = book.pages[state.page];
  $("page-no").textContent = `${state.page + 1} / ${book.pages.length}`;
  $("prev").disabled = state.page === 0;
  $("next").disabled = state.page >= book.pages.length - 1;
  renderWords(p);
  const img = $("page-img");
  img.alt = `Picture for page ${p.index}${p.scene ? `: ${p.scene}` : ""}`;
  img.src = p.image ? await mediaURL(p.image) : "";
  const audio = $("page-audio");
  audio.hidden = !p.audio;
  $("read-along").hidden = !p.audio;
  $("read-hint").hidden = !(p.audio && reading.words.length);
  if (p.audio) {
    const src = await mediaURL(p.audio);
    if (audio.src !== src) audio.src = src;
    if (reading.on) audio.play().catch(() => setReading(false));
  } else if (reading.on) {
    setReading(false);
  }
}
$("prev").addEventListener("click", () => { state.page -= 1; showPage(); });
$("next").addEventListener("click", () => { state.page += 1; showPage(); });

// --- read-along: the word being read is highlighted; a tap on a word reads from there; the pages turn
// with the narration. The highlight is visual only (aria-live off): a screen reader reads the text itself.
const reading = { on: false, words: [], spans: [], current: -1, frame: 0 };

function renderWords(p) {
  const box = $("page-text");
  const text = p.text || "";
  box.textContent = "";
  reading.words = p.audio && Array.isArray(p.words) ? p.words : [];
  reading.spans = [];
  reading.current = -1;
  let at = 0;
  reading.words.forEach((w, n) => {  // the same walk as render/readalong.py: each timed word where it is printed
    const i = text.indexOf(w.text, at);
    if (i < 0) return;
    if (i > at) box.append(text.slice(at, i));
    const span = document.createElement("span");
    span.className = "word";
    span.dataset.n = n;
    span.textContent = w.text;
    box.append(span);
    reading.spans[n] = span;
    at = i + w.text.length;
  });
  if (at < text.length) box.append(text.slice(at));
}

function wordAt(t) {  // the last word that has started by time t (binary search over the start times)
  const w = reading.words;
  let lo = 0, hi = w.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (w[mid].start <= t + 0.02) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

function highlight(n) {
  if (n === reading.current) return;
  const old = reading.spans[reading.current];
  if (old) old.classList.remove("reading");
  reading.current = n;
  const span = reading.spans[n];
  if (span) span.classList.add("reading");
}

function followAudio() {
  const audio = $("page-audio");
  if (audio.paused || audio.ended) return;  // a frame left over from the page before
  highlight(wordAt(audio.currentTime));
  reading.frame = requestAnimationFrame(followAudio);
}

function setReading(on) {
  reading.on = on;
  const button = $("read-along");
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? "⏸ Pause reading" : "▶ Read to me";
}

function playFrom(n) {
  const audio = $("page-audio");
  const w = reading.words[n];
  if (!w || audio.hidden) return;
  audio.currentTime = w.start;
  highlight(n);
  setReading(true);
  audio.play().catch(() => setReading(false));
}

$("read-along").addEventListener("click", () => {
  const audio = $("page-audio");
  if (reading.on) { setReading(false); audio.pause(); return; }
  setReading(true);
  if (audio.ended) audio.currentTime = 0;
  audio.play().catch(() => setReading(false));
});
$("page-text").addEventListener("click", (ev) => {
  const span = ev.target.closest(".word");
  if (span) playFrom(Number(span.dataset.n));
});
$("page-audio").addEventListener("play", () => {
  cancelAnimationFrame(reading.frame);
  setReading(true);
  reading.frame = requestAnimationFrame(followAudio);
});
$("page-audio").addEventListener("pause", () => {
  const audio = $("page-audio");
  if (!audio.ended) setReading(false);
});
$("page-audio").addEventListener("seeked", () => highlight(wordAt($("page-audio").currentTime)));
$("page-audio").addEventListener("ended", () => {
  cancelAnimationFrame(reading.frame);
  highlight(-1);
  if (!reading.on) return;
  if (state.book && state.page < state.book.pages.length - 1) {
    state.page += 1;  // the page turns with the narration, and the next page is read
    showPage();
  } else {
    setReading(false);
  }
});
document.addEventListener("keydown", (ev) => {
  if (!state.book || $("book-panel").hidden || ev.target.closest("input, select, textarea")) return;
  if (ev.key === "ArrowLeft" && !$("prev").disabled) $("prev").click();
  if (ev.key === "ArrowRight" && !$("next").disabled) $("next").click();
});

function showShare(book) {
  for (const kind of ["pdf", "epub"]) {
    const link = $(`${kind}-link`);
    link.hidden = !book.links[kind];
    link.dataset.url = book.links[kind] || "";
    if (state.shared) link.href = book.links[kind] || "#";
  }
  const share = book.share_url;
  $("qr").closest("figure").hidden = !share;
  if (share) {
    const id = share.split("/").pop();
    $("qr").src = `/v1/shared/${id}/qr.png`;
    $("share-link").href = share;
    $("share-link").textContent = share;
  }
}
for (const kind of ["pdf", "epub"]) {
  $(`${kind}-link`).addEventListener("click", async (ev) => {
    if (state.shared) return; // a plain link
    ev.preventDefault();
    const url = ev.currentTarget.dataset.url;
    if (!url) return;
    const a = document.createElement("a");
    a.href = await mediaURL(url);
    a.download = `${(state.book.title || "storybook").replace(/[^\p{L}\p{N} _-]+/gu, "").trim() || "storybook"}.${kind}`;
    document.body.append(a);
    a.click();
    a.remove();
  });
}

// --- reading another edition: its text, title and narration over the same pictures ---------------
const languageName = (code) => {
  if (state.languages && state.languages[code]) return state.languages[code];
  try { return new Intl.DisplayNames([navigator.language || "en"], { type: "language" }).of(code); } catch (_) { return code; }
};

function showLanguages(book) {
  const select = $("read-lang");
  const own = book.brief ? book.brief.lang : null;
  const codes = [own, ...(book.editions || []).filter((e) => e.current).map((e) => e.lang)].filter(Boolean);
  $("read-lang-row").hidden = codes.length < 2;
  if (!codes.includes(state.lang)) state.lang = null;
  select.innerHTML = "";
  for (const code of codes) {
    const o = document.createElement("option");
    o.value = code; o.textContent = languageName(code); o.lang = code;
    o.selected = code === (state.lang || own);
    select.append(o);
  }
  if (state.lang) showEdition();
}

async function showEdition() {
  const base = state.shared ? `/v1/shared/${state.shared}` : `/v1/books/${state.book.id}`;
  const chosen = state.lang;
  try {
    const shown = await getJSON(chosen ? `${base}?lang=${encodeURIComponent(chosen)}` : base);
    if (chosen !== state.lang) return; // another language was picked meanwhile
    state.book.pages = shown.pages;
    $("book-title").textContent = shown.title || "Your book";
    showPage();
  } catch (e) {
    $("edit-error").textContent = e.message;
  }
}
$("read-lang").addEventListener("change", () => {
  const own = state.book && state.book.brief ? state.book.brief.lang : null;
  state.lang = $("read-lang").value === own ? null : $("read-lang").value;
  setReading(false);
  showEdition();
});

function showEditions(book) {
  const list = $("editions");
  const editions = (book.editions || []).filter((e) => e.current);
  $("editions-panel").hidden = editions.length === 0;
  list.innerHTML = "";
  for (const e of editions) {
    const li = document.createElement("li");
    const name = languageName(e.lang);
    const note = !e.translated ? " — the LLM could not translate it; the text is in English"
      : e.machine_translated ? " — machine-translated" : "";
    li.append(`${name}: “${e.title}”${note} `);
    li.lang = e.lang;
    for (const [kind, label] of [["pdf", "PDF"], ["epub", "EPUB"]]) {
      if (!e[kind]) continue;
      const a = document.createElement("a");
      a.className = "button";
      a.textContent = label;
      a.href = e[kind];
      a.setAttribute("aria-label", `${label} in ${name}`);
      if (!state.shared) {
        a.addEventListener("click", async (ev) => {
          ev.preventDefault();
          const link = document.createElement("a");
          link.href = await mediaURL(e[kind]);
          link.download = `${e.title || "storybook"}.${e.lang}.${kind}`;
          document.body.append(link);
          link.click();
          link.remove();
        });
      }
      li.append(a, " ");
    }
    list.append(li);
  }
}
$("translate-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  edit(`/v1/books/${state.book.id}:translate`, { langs: [$("translate-lang").value] });
});

async function edit(path, body) {
  $("edit-error").textContent = "";
  try {
    await postJSON(path, body);
    state.blobs.clear();
    openBook(state.book.id, { keepPage: true });
  } catch (e) {
    $("edit-error").textContent = e.message;
  }
}
$("redraw").addEventListener("click", () => edit(`/v1/books/${state.book.id}/pages/${state.page + 1}:redraw`, {}));
$("extend").addEventListener("click", () => edit(`/v1/books/${state.book.id}:extend`, { pages: 2 }));
$("rewrite-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  edit(`/v1/books/${state.book.id}/pages/${state.page + 1}:rewrite`, { instruction: $("rewrite-text").value.trim() });
  $("rewrite-text").value = "";
});

// --- library ----------------------------------------------------------------------------------
async function loadLibrary() {
  if (state.shared || !token()) return;
  let books = [];
  try { books = await getJSON("/v1/books"); } catch (_) { return; }
  $("library-panel").hidden = books.length === 0;
  const list = $("library");
  list.innerHTML = "";
  for (const b of books) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.innerHTML = `<span class="title"></span><span class="status"></span>`;
    button.querySelector(".title").textContent = b.title || "Untitled book";
    button.querySelector(".status").textContent = `${b.pages} pages · ${b.status}`;
    button.addEventListener("click", () => { location.hash = `book=${b.id}`; openBook(b.id); });
    li.append(button);
    list.append(li);
  }
}

function openBook(id, { keepPage = false } = {}) {
  if (!keepPage) state.page = 0;
  $("make-panel").hidden = true; // the book takes the stage; "New book" brings the form back
  $("new-book").hidden = false;
  $("progress-error").textContent = "";
  follow(id);
  if (!keepPage) window.scrollTo({ top: 0 });
}

// --- start ------------------------------------------------------------------------------------
async function start() {
  if (state.shared) {
    document.body.classList.add("shared");
    try { showBook(await getJSON(`/v1/shared/${state.shared}`)); } catch (e) { $("progress-error").textContent = e.message; }
    return;
  }
  loadOptions().catch(() => {});
  if (!token()) showToken();
  loadLibrary();
  openFromHash();
  window.addEventListener("hashchange", openFromHash);
}

function openFromHash() {
  const m = location.hash.match(/book=([A-Za-z0-9_-]+)/);
  if (m && token() && m[1] !== state.following) openBook(m[1]);
}
start();
