// Keyboard answering, visible-time tracking and draft keeping for the rating page.
// The page works without this file: radio buttons and a submit button post the form.
(function () {
  "use strict";

  const SIDE_KEYS = { "1": "left", l: "left", "2": "tie", t: "tie", "3": "right", r: "right" };
  const FIT_KEYS = { y: "yes", n: "no" };
  const CLAIM_KEYS = { s: "supported", "1": "supported", n: "unsupported", "2": "unsupported", c: "contradicted", "3": "contradicted" };
  let current = 0;
  let wordAt = 0; // the word cursor in the current claim
  let visibleMs = 0;
  let visibleSince = document.visibilityState === "visible" ? performance.now() : null;

  function form() { return document.getElementById("answer-form"); }
  function fieldsets() { const f = form(); return f ? Array.from(f.querySelectorAll("fieldset.criterion")) : []; }
  function draftKey() { const task = document.getElementById("task"); return task ? "xrec-draft-" + task.dataset.assignment : null; }

  function mark() {
    fieldsets().forEach((fs, i) => {
      fs.classList.toggle("current", i === current);
      const open = i === current && markable(fs);
      fs.querySelectorAll(".word").forEach((w, j) => w.classList.toggle("cursor", open && j === wordAt));
    });
    document.querySelectorAll(".claim-span").forEach((span) => {
      span.classList.toggle("current", span.dataset.claimNumber === String(current + 1));
    });
  }

  // --- Claims: marking the words that make a claim unsupported ---------------------------
  function markable(fs) {
    const chosen = fs.querySelector("input[type=radio]:checked");
    return fs.classList.contains("claim") && chosen !== null && chosen.value !== "supported";
  }
  function spansInput(fs) { return fs.querySelector("input[data-spans]"); }
  function writeSpans(fs) {
    // Consecutive marked words make one span, from the first word's start to the last's end.
    const spans = [];
    let open = null;
    fs.querySelectorAll(".word").forEach((w) => {
      if (w.classList.contains("marked")) {
        if (open) open[1] = Number(w.dataset.end);
        else { open = [Number(w.dataset.start), Number(w.dataset.end)]; spans.push(open); }
      } else open = null;
    });
    const input = spansInput(fs);
    if (input) input.value = spans.length ? JSON.stringify(spans) : "";
  }
  function readSpans(fs) {
    const input = spansInput(fs);
    let spans = [];
    try { spans = input && input.value ? JSON.parse(input.value) : []; } catch (e) { spans = []; }
    fs.querySelectorAll(".word").forEach((w) => {
      const start = Number(w.dataset.start), end = Number(w.dataset.end);
      w.classList.toggle("marked", spans.some(([s, e]) => start >= s && end <= e));
    });
  }
  function toggleWord(fs, word) {
    word.classList.toggle("marked");
    writeSpans(fs);
    saveDraft();
  }

  function choose(fs, value) {
    const radio = fs.querySelector(`input[type=radio][value="${value}"]`);
    if (!radio) return false;
    radio.checked = true;
    saveDraft();
    return true;
  }

  function step(fs, delta) {
    const radios = Array.from(fs.querySelectorAll("input[type=radio]"));
    const at = radios.findIndex((r) => r.checked);
    const next = Math.max(0, Math.min(radios.length - 1, at < 0 ? (delta > 0 ? 0 : radios.length - 1) : at + delta));
    radios[next].checked = true;
    saveDraft();
  }

  function nextUnanswered(from) {
    const all = fieldsets();
    for (let i = from + 1; i < all.length; i++) if (!all[i].querySelector("input:checked")) return i;
    return Math.min(from + 1, all.length - 1);
  }

  function saveDraft() {
    const key = draftKey(), f = form();
    if (!key || !f) return;
    const answers = {};
    f.querySelectorAll("input[type=radio]:checked").forEach((r) => { answers[r.name] = r.value; });
    f.querySelectorAll("input[data-spans]").forEach((i) => { if (i.value) answers[i.name] = i.value; });
    try { sessionStorage.setItem(key, JSON.stringify(answers)); } catch (e) { /* storage full or disabled */ }
  }

  function restoreDraft() {
    const key = draftKey(), f = form();
    if (!key || !f) return;
    let answers = null;
    try { answers = JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { answers = null; }
    if (!answers) return;
    Object.entries(answers).forEach(([name, value]) => {
      const spans = f.querySelector(`input[data-spans][name="${name}"]`);
      if (spans) { if (!spans.value) spans.value = value; return; }
      const radio = f.querySelector(`input[type=radio][name="${name}"][value="${value}"]`);
      if (radio && !f.querySelector(`input[type=radio][name="${name}"]:checked`)) radio.checked = true;
    });
  }

  function totalVisibleMs() {
    return Math.round(visibleMs + (visibleSince === null ? 0 : performance.now() - visibleSince));
  }

  // The visible time survives a reload of the same item: it is kept beside the draft.
  function visibleKey() { const key = draftKey(); return key ? key + "-visible-ms" : null; }
  function saveVisible() {
    const key = visibleKey();
    if (key) try { sessionStorage.setItem(key, String(totalVisibleMs())); } catch (e) { /* ignore */ }
  }
  function restoredVisible() {
    const key = visibleKey();
    try { return key ? Number(sessionStorage.getItem(key) || 0) : 0; } catch (e) { return 0; }
  }

  function init() {
    current = 0;
    visibleMs = restoredVisible();
    visibleSince = document.visibilityState === "visible" ? performance.now() : null;
    restoreDraft();
    const all = fieldsets();
    all.forEach((fs) => { if (fs.classList.contains("claim")) readSpans(fs); });
    wordAt = 0;
    const firstOpen = all.findIndex((fs) => !fs.querySelector("input:checked"));
    current = firstOpen < 0 ? 0 : firstOpen;
    mark();
    const error = document.getElementById("network-error");
    if (error) error.hidden = true;
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") visibleSince = performance.now();
    else if (visibleSince !== null) { visibleMs += performance.now() - visibleSince; visibleSince = null; }
    saveVisible();
  });
  window.addEventListener("pagehide", saveVisible);

  document.addEventListener("submit", (event) => {
    const f = event.target;
    if (f.id !== "answer-form") return;
    const hidden = f.querySelector("input[name=visible_ms]");
    if (hidden) hidden.value = String(totalVisibleMs());
  }, true);

  document.addEventListener("change", (event) => {
    const fs = event.target.closest && event.target.closest("fieldset.criterion");
    if (!fs) return;
    if (fieldsets().indexOf(fs) !== current) wordAt = 0;
    current = fieldsets().indexOf(fs);
    mark();
    saveDraft();
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches && event.target.matches("input[type=text], textarea, select")) return;
    const cont = document.getElementById("continue");
    if (cont && event.key === "Enter") { event.preventDefault(); cont.click(); return; }
    const f = form();
    if (!f) return;
    const all = fieldsets();
    if (!all.length) return;
    const fs = all[current];
    const kind = f.dataset.kind;
    const key = event.key.toLowerCase();
    if (event.key === "Enter") {
      event.preventDefault();
      const hidden = f.querySelector("input[name=visible_ms]");
      if (hidden) hidden.value = String(totalVisibleMs());
      f.requestSubmit();
      return;
    }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      current = Math.max(0, Math.min(all.length - 1, current + (event.key === "ArrowDown" ? 1 : -1)));
      wordAt = 0;
      mark();
      return;
    }
    if (kind === "claim" && markable(fs)) {
      const words = fs.querySelectorAll(".word");
      if (words.length && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
        event.preventDefault();
        wordAt = Math.max(0, Math.min(words.length - 1, wordAt + (event.key === "ArrowRight" ? 1 : -1)));
        mark();
        return;
      }
      if (words.length && (event.key === " " || key === "x")) {
        event.preventDefault();
        toggleWord(fs, words[Math.min(wordAt, words.length - 1)]);
        return;
      }
    }
    if (kind === "scale" && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      event.preventDefault();
      step(fs, event.key === "ArrowRight" ? 1 : -1);
      return;
    }
    let value = null;
    if (kind === "scale" && /^[0-9]$/.test(key)) value = key === "0" ? "10" : key;
    else if (kind === "side") value = SIDE_KEYS[key] || null;
    else if (kind === "fit") value = FIT_KEYS[key] || null;
    else if (kind === "claim") value = CLAIM_KEYS[key] || null;
    if (value !== null && choose(fs, value)) {
      event.preventDefault();
      // A claim found unsupported keeps the focus, so its words can be marked; ↓ moves on.
      if (kind !== "claim" || value === "supported") { current = nextUnanswered(current); wordAt = 0; }
      mark();
    }
  });

  document.addEventListener("click", (event) => {
    const word = event.target.closest && event.target.closest(".claim .word");
    if (!word) return;
    const fs = word.closest("fieldset.criterion");
    current = fieldsets().indexOf(fs);
    wordAt = Array.from(fs.querySelectorAll(".word")).indexOf(word);
    toggleWord(fs, word);
    mark();
  });

  // A failed request leaves the form as it was (htmx swaps nothing): say so, keep the answers.
  function showNetworkError() {
    const error = document.getElementById("network-error");
    if (error) error.hidden = false;
  }
  document.addEventListener("htmx:sendError", showNetworkError);
  document.addEventListener("htmx:responseError", showNetworkError);
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "task") init();
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    // The answered item's draft is no longer needed once the server moved on to another item
    // (a re-rendered form with an error keeps both the draft and the visible time).
    const xhr = event.detail.xhr;
    if (xhr && xhr.status < 300 && (xhr.getResponseHeader("HX-Push-Url") || xhr.getResponseHeader("HX-Redirect"))) {
      const key = draftKey();
      if (key) try { sessionStorage.removeItem(key); sessionStorage.removeItem(key + "-visible-ms"); } catch (e) { /* ignore */ }
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
