/* motionwatch web UI: events gallery, event page, live view, status.
   Plain JavaScript, no libraries; every value from the server goes in as text. */
"use strict";

const PAGE = 60;
const state = { csrf: "", mode: "serve", live: [], auth: false, lastEvent: null, timers: [] };
const view = document.getElementById("view");

// --- helpers -------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // CSSOM, which the CSP allows (style="" is blocked)
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids.flat()) if (kid) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, opts));
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent("/" + location.hash); throw new Error("login required"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function post(path, data) {
  return api(path, { method: "POST", body: JSON.stringify(data || {}),
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": state.csrf } });
}
function toast(text, bad) {
  const t = h("div", { class: "toast" + (bad ? " bad" : ""), role: "status" }, text);
  document.body.append(t);
  setTimeout(() => t.remove(), 3500);
}
const pct = (f, d = 1) => (100 * f).toFixed(d) + "%";
const hms = (iso) => iso.slice(11, 19);
function secs(x) {
  if (x < 60) return x.toFixed(1) + " s";
  const m = Math.floor(x / 60), r = Math.round(x % 60);
  return m + ":" + String(r).padStart(2, "0") + " min";
}
function dayTitle(iso) {
  const d = new Date(iso.slice(0, 10) + "T12:00:00");
  return d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}
function bytes(n) {
  if (n === null || n === undefined) return "?";
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}
// Non-breaking spaces: "5 s ago" must not wrap inside itself on a phone.
function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  const say = (n, unit) => n + "\u00a0" + unit + "\u00a0ago";
  if (s < 90) return say(Math.round(s), "s");
  if (s < 5400) return say(Math.round(s / 60), "min");
  if (s < 129600) return say(Math.round(s / 3600), "h");
  return say(Math.round(s / 86400), Math.round(s / 86400) === 1 ? "day" : "days");
}
const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
function every(ms, fn) { fn(); state.timers.push(setInterval(fn, ms)); }
function hashParams() {
  const q = location.hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(q));
}
function setHashParams(p) {
  const q = new URLSearchParams(Object.entries(p).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  location.hash = "#/" + (q.toString() ? "?" + q : "");
}

// --- router ----------------------------------------------------------------------

let keyHandler = null;
document.addEventListener("keydown", (e) => {
  if (e.target.matches("input, select, textarea") || e.altKey || e.ctrlKey || e.metaKey) return;
  if ((e.key === " " || e.key === "Enter") && e.target.matches("button, a, video")) return; // their own action
  if (keyHandler) keyHandler(e);
  else if (e.key === "Escape" && location.hash.startsWith("#/event/")) location.hash = "#/"; // page still loading
});

function route() {
  state.timers.forEach(clearInterval); state.timers = [];
  // Stop MJPEG streams of the page we leave (an <img> keeps its connection open).
  view.querySelectorAll("img[data-live]").forEach((img) => img.removeAttribute("src"));
  keyHandler = null;
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/";
  let m;
  document.querySelectorAll("nav a").forEach((a) => a.classList.remove("active"));
  const nav = (n) => { const a = document.querySelector(`nav a[data-nav="${n}"]`); if (a) a.classList.add("active"); };
  if ((m = path.match(/^\/event\/([A-Za-z0-9_-]+)$/))) { nav("events"); return showEvent(m[1]); }
  if (path === "/live") { nav("live"); return showLive(); }
  if (path === "/status") { nav("status"); return showStatus(); }
  nav("events"); return showGallery();
}
window.addEventListener("hashchange", route);

function fail(err) {
  view.replaceChildren(h("div", { class: "empty" }, "Could not load: " + err.message));
}

// --- gallery ---------------------------------------------------------------------

async function showGallery() {
  document.title = "Events · motionwatch";
  const p = hashParams();
  const page = Math.max(1, parseInt(p.page || "1", 10) || 1);
  const q = new URLSearchParams({ limit: PAGE, offset: (page - 1) * PAGE });
  if (p.camera) q.set("camera", p.camera);
  if (p.date) q.set("date", p.date);
  let data;
  try { data = await api("/api/events?" + q); } catch (e) { return fail(e); }

  const camSel = h("select", { id: "f-camera", "aria-label": "Camera",
    onchange: () => setHashParams({ camera: camSel.value, date: p.date }) },
    h("option", { value: "" }, "All cameras"),
    data.cameras.map((c) => h("option", { value: c, selected: c === p.camera }, c)));
  const dateIn = h("input", { type: "date", id: "f-date", value: p.date || "", "aria-label": "Day",
    onchange: () => setHashParams({ camera: p.camera, date: dateIn.value }) });
  const first = data.offset + 1, last = data.offset + data.events.length;
  const countText = data.events.length === 0 ? "" :
    data.total !== null ? `${first.toLocaleString()}–${last.toLocaleString()} of ${plural(data.total, "event")}`
                        : `${first.toLocaleString()}–${last.toLocaleString()}${data.more ? "+" : ""} ${last - first || data.more ? "events" : "event"}`;
  const toolbar = h("div", { class: "toolbar" },
    h("label", {}, "Camera", camSel), h("label", {}, "Day", dateIn),
    (p.camera || p.date) ? h("button", { onclick: () => setHashParams({}) }, "Clear filters") : null,
    h("span", { class: "count", id: "count" }, countText));

  const body = [];
  if (!data.events.length) {
    body.push(h("div", { class: "empty" }, (p.camera || p.date) ? "No events match these filters."
      : "No events recorded yet. Motion will show up here."));
  }
  let day = null, grid = null, n = 0;
  for (const ev of data.events) {
    const d = ev.start.slice(0, 10);
    if (d !== day) {
      day = d; n = 0;
      grid = h("div", { class: "grid" });
      const count = h("span", { class: "n" });
      body.push(h("section", { class: "day", "data-day": d }, h("h2", {}, dayTitle(ev.start), count), grid));
      grid._count = count;
    }
    grid.append(card(ev));
    grid._count.textContent = plural(++n, "event");
  }
  const totalPages = data.total !== null ? Math.max(1, Math.ceil(data.total / PAGE)) : null;
  const go = (pg) => setHashParams({ camera: p.camera, date: p.date, page: pg > 1 ? pg : "" });
  const pager = h("div", { class: "pager" },
    h("button", { id: "newer", disabled: page <= 1, onclick: () => go(page - 1) }, "← Newer"),
    h("span", {}, totalPages ? `Page ${page} of ${totalPages}` : `Page ${page}`),
    h("button", { id: "older", disabled: !data.more, onclick: () => go(page + 1) }, "Older →"));
  const keys = h("p", { class: "keys" }, h("kbd", {}, "←"), " ", h("kbd", {}, "→"), " ", h("kbd", {}, "↑"), " ",
    h("kbd", {}, "↓"), " move · ", h("kbd", {}, "Enter"), " open · ", h("kbd", {}, "PgUp"), " ",
    h("kbd", {}, "PgDn"), " newer/older page · ", h("kbd", {}, "Home"), " ", h("kbd", {}, "End"), " first/last");
  view.replaceChildren(toolbar, ...body, data.events.length ? pager : "", data.events.length ? keys : "");

  const cards = [...view.querySelectorAll(".card")];
  const back = state.lastEvent && cards.find((c) => c.dataset.id === state.lastEvent);
  if (back) back.focus({ preventScroll: false });
  keyHandler = (e) => galleryKeys(e, cards, page, data.more, go);

  // New events while the first page is open: offer them instead of moving the page under the reader.
  if (page === 1) {
    const newest = data.events.length ? data.events[0].id : null;
    const fresh = h("button", { class: "primary", id: "new-events", hidden: true, onclick: () => route() }, "New events: show");
    toolbar.insertBefore(fresh, toolbar.querySelector(".count"));
    every(15000, async () => {
      const q1 = new URLSearchParams(q); q1.set("limit", 1); q1.set("offset", 0);
      try {
        const top = await api("/api/events?" + q1);
        fresh.hidden = !top.events.length || top.events[0].id === newest;
      } catch (e) { /* offline for a moment: try again next time */ }
    });
  }
}

function card(ev) {
  return h("a", { class: "card", href: "#/event/" + ev.id, "data-id": ev.id,
      title: `${ev.camera} ${ev.start.slice(0, 19).replace("T", " ")}` },
    h("div", { class: "thumb" },
      ev.thumbnail_url ? h("img", { src: ev.thumbnail_url, alt: `motion on ${ev.camera}`, loading: "lazy", decoding: "async" }) : null,
      h("span", { class: "badge dur" }, secs(ev.duration_s)),
      ev.has_clip ? h("span", { class: "badge clip" }, "▶ clip") : null,
      ev.kept ? h("span", { class: "badge kept" }, "★ kept") : null),
    h("div", { class: "meta" },
      h("span", { class: "time" }, hms(ev.start)),
      h("span", { class: "peak", title: "peak share of the picture that changed" }, pct(ev.peak_fraction)),
      h("span", { class: "cam" }, ev.camera)));
}

function galleryKeys(e, cards, page, more, go) {
  const i = cards.indexOf(document.activeElement);
  const focus = (c) => { if (c) { e.preventDefault(); c.focus(); c.scrollIntoView({ block: "nearest" }); } };
  switch (e.key) {
    case "ArrowRight": return focus(cards[i < 0 ? 0 : Math.min(i + 1, cards.length - 1)]);
    case "ArrowLeft": return focus(cards[i < 0 ? 0 : Math.max(i - 1, 0)]);
    case "ArrowDown": return focus(i < 0 ? cards[0] : vertical(cards, i, +1));
    case "ArrowUp": return focus(i < 0 ? cards[0] : vertical(cards, i, -1));
    case "Home": return focus(cards[0]);
    case "End": return focus(cards[cards.length - 1]);
    case "PageDown": if (more) { e.preventDefault(); go(page + 1); } return;
    case "PageUp": if (page > 1) { e.preventDefault(); go(page - 1); } return;
  }
}

// The card in the next row up or down whose centre is nearest, across day sections.
function vertical(cards, i, dir) {
  const r0 = cards[i].getBoundingClientRect(), cx = r0.left + r0.width / 2;
  let best = null, bestRow = null, bestDx = Infinity;
  for (const c of cards) {
    const r = c.getBoundingClientRect();
    if (dir > 0 ? r.top <= r0.top + 2 : r.top >= r0.top - 2) continue;
    if (bestRow !== null && Math.abs(r.top - bestRow) > 2) {
      if (dir > 0 ? r.top > bestRow : r.top < bestRow) continue;
      best = null; bestDx = Infinity;
    }
    bestRow = r.top;
    const dx = Math.abs(r.left + r.width / 2 - cx);
    if (dx < bestDx) { best = c; bestDx = dx; }
  }
  return best;
}

// --- event page ----------------------------------------------------------------------

async function showEvent(id) {
  let ev;
  try { ev = await api("/api/events/" + encodeURIComponent(id)); } catch (e) { return fail(e); }
  state.lastEvent = id;
  document.title = `${ev.camera} ${hms(ev.start)} · motionwatch`;
  const [fw, fh] = ev.frame_size || [0, 0];

  // Pictures: the snapshot (and the first frame when saved), each with its boxes.
  const shots = [{ label: "Snapshot", url: ev.snapshot_url, boxes: ev.boxes || [] }];
  if (ev.snapshot_first_url) shots.push({ label: "First frame", url: ev.snapshot_first_url, boxes: ev.boxes_first || [] });
  if (ev.annotated_url) shots.push({ label: "Annotated", url: ev.annotated_url, boxes: [] });
  const img = h("img", { id: "snapshot", alt: `snapshot of event ${ev.id}` });
  const svg = s("svg", { class: "boxes", viewBox: `0 0 ${fw || 1} ${fh || 1}`, preserveAspectRatio: "none" });
  const stage = h("div", { class: "stage", id: "stage" }, img, svg);
  const showShot = (k) => {
    img.src = shots[k].url;
    svg.replaceChildren(...shots[k].boxes.map(([x, y, w, bh]) => s("rect", { x, y, width: w, height: bh, rx: 2 })));
    shotBtns.forEach((b, j) => b.classList.toggle("on", j === k));
  };
  const shotBtns = shots.map((sh, k) => h("button", { onclick: () => showShot(k) }, sh.label));
  const boxBtn = h("button", { id: "toggle-boxes", class: "on", "aria-pressed": "true", title: "B",
    onclick: () => toggleBoxes() }, "Boxes");
  const toggleBoxes = () => {
    const hidden = stage.classList.toggle("hide-boxes");
    boxBtn.classList.toggle("on", !hidden); boxBtn.setAttribute("aria-pressed", String(!hidden));
  };
  const pictures = h("div", { class: "panel" },
    h("div", { class: "tabs" }, shots.length > 1 ? shotBtns : h("h3", { style: "margin:0" }, "Snapshot"),
      h("span", { class: "right" }, boxBtn,
        h("a", { href: ev.snapshot_url, download: `${ev.camera}-${ev.id}.jpg` }, h("button", { tabindex: -1 }, "Download")))),
    stage);
  showShot(0);

  // The clip (or its numbered parts) in a seekable player.
  let clipPanel = null;
  if (ev.clip_urls.length) {
    const video = h("video", { id: "clip", controls: true, preload: "metadata", playsinline: true,
      poster: ev.snapshot_url, src: ev.clip_urls[0] });
    const download = h("a", { href: ev.clip_urls[0], download: "" }, h("button", { tabindex: -1 }, "Download"));
    const note = h("p", { class: "dim", id: "clip-note", hidden: true });
    let part = 0;
    const playPart = (k, autoplay) => {
      part = k; video.src = ev.clip_urls[k]; download.href = ev.clip_urls[k]; note.hidden = true;
      if (autoplay) video.play().catch(() => {});
      parts.forEach((b, j) => b.classList.toggle("on", j === k));
    };
    const parts = ev.clip_urls.length > 1 ? ev.clip_urls.map((u, k) => h("button", {
      class: k === 0 ? "on" : "", "data-part": k + 1, onclick: () => playPart(k, true) }, `Part ${k + 1}`)) : [];
    // A long event's parts play one after another.
    video.addEventListener("ended", () => { if (part + 1 < ev.clip_urls.length) playPart(part + 1, true); });
    // Some formats (MPEG-4 Part 2 "mp4v", AVI) play in desktop players but not in browsers.
    video.addEventListener("error", () => {
      note.textContent = `This browser cannot play this clip${ev.clip_format ? " (" + ev.clip_format + ")" : ""}; use Download to open it in a video player.`;
      note.hidden = false;
    });
    clipPanel = h("div", { class: "panel" },
      h("div", { class: "tabs" }, h("h3", { style: "margin:0" }, "Clip"), parts, h("span", { class: "right" }, download)),
      h("div", { class: "stage" }, video), note);
  }

  const keepBtn = h("button", { id: "keep", class: ev.kept ? "on" : "", title: "K",
    onclick: async () => {
      try {
        await post(`/api/events/${ev.id}/${ev.kept ? "unkeep" : "keep"}`);
        ev.kept = !ev.kept;
        keepBtn.textContent = ev.kept ? "★ Kept" : "☆ Keep";
        keepBtn.classList.toggle("on", ev.kept);
        toast(ev.kept ? "Kept: retention will not delete this event" : "No longer kept");
      } catch (e) { toast(e.message, true); }
    } }, ev.kept ? "★ Kept" : "☆ Keep");
  const delBtn = h("button", { id: "delete", class: "danger", title: "Delete",
    onclick: async () => {
      if (!confirm(`Delete event ${ev.id} (${ev.camera}, ${ev.start.slice(0, 19).replace("T", " ")}) and its files?`)) return;
      try {
        await post(`/api/events/${ev.id}/delete`);
        toast("Event deleted");
        state.lastEvent = ev.older_id || ev.newer_id;
        location.hash = ev.older_id ? "#/event/" + ev.older_id : "#/";
      } catch (e) { toast(e.message, true); }
    } }, "Delete");

  const rows = [
    ["Camera", ev.camera], ["Start", ev.start.slice(0, 23).replace("T", " ")],
    ["End (last motion)", ev.end.slice(0, 23).replace("T", " ")],
    ["Duration", secs(ev.duration_s)], ["Peak change", pct(ev.peak_fraction, 2)],
    ["Frames with motion", ev.frames_with_motion.toLocaleString()],
    ["Source frames", `${ev.start_frame}–${ev.end_frame}`],
    ["Source time", `${ev.start_offset_s.toFixed(2)}–${ev.end_offset_s.toFixed(2)} s`],
    ["Picture", fw ? `${fw}×${fh}` : "?"], ["Boxes", String((ev.boxes || []).length)], ["Id", ev.id],
  ];
  const info = h("div", { class: "panel" }, h("h3", {}, "Event"),
    h("table", { class: "kv" }, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
  const chart = h("div", { class: "panel chart" }, h("h3", {}, "Changed share of the picture"),
    fractionChart(ev.fractions || [], ev.trigger_fraction, ev.duration_s));
  const actions = h("div", { class: "panel" }, h("h3", {}, "Actions"), h("div", { class: "actions" }, keepBtn, delBtn));

  const nav = h("div", { class: "nav" },
    h("button", { id: "go-newer", disabled: !ev.newer_id, title: "←", onclick: () => { location.hash = "#/event/" + ev.newer_id; } }, "← Newer"),
    h("button", { id: "go-older", disabled: !ev.older_id, title: "→", onclick: () => { location.hash = "#/event/" + ev.older_id; } }, "Older →"));
  const head = h("div", { class: "ev-head" },
    h("a", { href: "#/", id: "back" }, "← Events"),
    h("h1", {}, `${ev.camera} · ${hms(ev.start)}`),
    h("span", { class: "sub" }, dayTitle(ev.start)), nav);
  const keys = h("p", { class: "keys" }, h("kbd", {}, "←"), " ", h("kbd", {}, "→"), " newer/older · ",
    h("kbd", {}, "B"), " boxes · ", h("kbd", {}, "K"), " keep · ", h("kbd", {}, "Space"), " play · ",
    h("kbd", {}, "Esc"), " back to events");
  view.replaceChildren(head, h("div", { class: "ev" },
    h("div", { class: "stack" }, pictures, clipPanel), h("div", { class: "stack" }, info, chart, actions)), keys);
  window.scrollTo(0, 0);

  keyHandler = (e) => {
    if (e.target.closest && e.target.closest("video")) return;
    const k = e.key.toLowerCase();
    if (e.key === "ArrowLeft" && ev.newer_id) location.hash = "#/event/" + ev.newer_id;
    else if (e.key === "ArrowRight" && ev.older_id) location.hash = "#/event/" + ev.older_id;
    else if (e.key === "Escape") location.hash = "#/";
    else if (k === "b") toggleBoxes();
    else if (k === "k") keepBtn.click();
    else if (e.key === "Delete") delBtn.click();
    else if (e.key === " " && clipPanel) { e.preventDefault(); const v = clipPanel.querySelector("video"); v.paused ? v.play() : v.pause(); }
    else return;
  };
}

function fractionChart(points, trigger, duration) {
  const W = 340, H = 150, L = 44, R = 6, T = 8, B = 20;
  const tmax = Math.max(duration || 0, ...points.map((p) => p[0]), 0.001);
  const fmax = Math.max(trigger || 0, ...points.map((p) => p[1]), 0.0001) * 1.15;
  const x = (t) => L + (W - L - R) * t / tmax, y = (f) => T + (H - T - B) * (1 - f / fmax);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "changed share over the event" });
  const grid = s("g", { class: "grid" });
  for (let k = 0; k <= 3; k++) {
    const f = fmax * k / 3;
    grid.append(s("line", { x1: L, x2: W - R, y1: y(f), y2: y(f) }));
    svg.append(s("text", { x: L - 6, y: y(f) + 4, "text-anchor": "end" }, pct(f, f < 0.01 ? 2 : 1)));
  }
  for (let k = 0; k <= 4; k++) {
    const t = tmax * k / 4;
    // The end labels align inwards so neither is cut off at the chart's edge.
    const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
    svg.append(s("text", { x: x(t), y: H - 6, "text-anchor": anchor }, t.toFixed(t < 10 ? 1 : 0) + "\u00a0s"));
  }
  svg.prepend(grid);
  if (points.length) {
    const pts = points.map(([t, f]) => `${x(t).toFixed(1)},${y(f).toFixed(1)}`);
    svg.append(s("path", { class: "area", d: `M${x(points[0][0])},${y(0)} L${pts.join(" L")} L${x(points[points.length - 1][0])},${y(0)} Z` }));
    svg.append(s("polyline", { class: "line", points: pts.join(" ") }));
  }
  if (trigger) {
    svg.append(s("line", { class: "trig", x1: L, x2: W - R, y1: y(trigger), y2: y(trigger) }));
    svg.append(s("text", { x: W - R, y: y(trigger) - 4, "text-anchor": "end" }, "trigger"));
  }
  return svg;
}

// --- live ------------------------------------------------------------------------------

async function showLive() {
  document.title = "Live · motionwatch";
  if (!state.live.length) {
    view.replaceChildren(h("div", { class: "empty" }, "Live view runs inside `motionwatch run` with web.enabled: true."));
    return;
  }
  const tiles = {};
  const grid = h("div", { class: "live-grid" });
  for (const name of state.live) {
    const img = h("img", { "data-live": name, alt: `live picture of ${name}`, id: "live-" + name });
    const stream = (overlay) => { img.src = `/live/${encodeURIComponent(name)}.mjpg${overlay ? "?overlay=1" : ""}`; };
    const ov = h("button", { class: "", "aria-pressed": "false", "data-overlay": name, title: "Key: the letter O",
      onclick: () => { const on = !ov.classList.contains("on"); ov.classList.toggle("on", on); ov.setAttribute("aria-pressed", String(on)); stream(on); } },
      "Motion overlay");
    const st = h("span", { class: "state" });
    const fill = h("div", { class: "fill" }), trig = h("div", { class: "trig" });
    const stats = h("div", { class: "stats" });
    const spark = h("div", { class: "spark" });
    grid.append(h("div", { class: "panel cam-tile" },
      h("div", { class: "bar" }, h("span", { class: "name" }, name), st, h("span", { class: "spacer", style: "flex:1" }), ov),
      h("div", { class: "stage" }, img),
      h("div", { class: "meter", title: "changed share now; the yellow line is the trigger" }, fill, trig), spark, stats));
    tiles[name] = { st, fill, trig, stats, spark, ov };
    stream(false);
  }
  view.replaceChildren(grid, h("p", { class: "keys" }, "Letter ", h("kbd", {}, "O"),
    " key: motion overlay on all cameras"));
  keyHandler = (e) => { if (e.key.toLowerCase() === "o") Object.values(tiles).forEach((t) => t.ov.click()); };
  every(1000, async () => {
    let data;
    try { data = await api("/api/live"); } catch (e) { return; }
    for (const c of data.cameras) {
      const t = tiles[c.name]; if (!t) continue;
      // While an event is open but this frame is under the trigger, it is not "motion":
      // the event is waiting out its gap before it ends.
      const moving = c.in_event && c.fraction >= c.trigger_fraction;
      t.st.className = "state " + (!c.connected ? "bad" : moving ? "motion" : c.in_event ? "open" : "ok");
      t.st.textContent = !c.connected ? `lost ${ago(c.since)}` : moving ? "motion" : c.in_event ? "event open" : "watching";
      const scale = Math.max(c.trigger_fraction * 4, 0.02);
      t.fill.style.width = Math.min(100, 100 * c.fraction / scale) + "%";
      t.fill.classList.toggle("over", c.fraction >= c.trigger_fraction);
      t.trig.style.left = (100 * c.trigger_fraction / scale) + "%";
      t.stats.replaceChildren(
        h("span", {}, "changed ", h("b", {}, pct(c.fraction, 2)), " / trigger ", pct(c.trigger_fraction, 2)),
        h("span", {}, h("b", {}, c.fps.toFixed(1)), " fps"),
        h("span", {}, h("b", {}, c.dropped.toLocaleString()), " dropped"),
        h("span", {}, h("b", {}, String(c.events)), c.events === 1 ? " event" : " events"));
      t.spark.replaceChildren(sparkline(c.history, c.trigger_fraction, scale));
    }
  });
}

function sparkline(hist, trigger, scale) {
  const W = 300, H = 50, span = 20;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const y = (f) => H - 2 - (H - 4) * Math.min(f / scale, 1);
  if (hist.length > 1) svg.append(s("polyline", { fill: "none", stroke: "#4cc2ff", "stroke-width": 1.5,
    "vector-effect": "non-scaling-stroke", points: hist.map(([t, f]) => `${(W * (1 + t / span)).toFixed(1)},${y(f).toFixed(1)}`).join(" ") }));
  svg.append(s("line", { x1: 0, x2: W, y1: y(trigger), y2: y(trigger), stroke: "#f5b83d", "stroke-dasharray": "4 3", "vector-effect": "non-scaling-stroke" }));
  return svg;
}

// --- status ------------------------------------------------------------------------------

async function showStatus() {
  document.title = "Status · motionwatch";
  view.replaceChildren(h("div", { class: "empty" }, "Loading…"));
  every(5000, async () => {
    let st;
    try { st = await api("/api/status"); } catch (e) { return fail(e); }
    const cams = st.cameras.map((c) => h("div", { class: "panel", "data-camera": c.name },
      h("div", { class: "bar", style: "display:flex;gap:10px;align-items:center;margin-bottom:8px" },
        h("span", { class: "name", style: "font-weight:650;font-size:16px" }, c.name),
        c.live ? h("span", { class: "state " + (c.connected ? "ok" : "bad") },
          (c.connected ? "connected " : "lost ") + ago(c.since)) : h("span", { class: "state" }, "recorded")),
      h("table", { class: "kv" },
        c.live ? [
          h("tr", {}, h("th", {}, "Frame rate"), h("td", {}, `${c.fps.toFixed(1)} fps analysed`)),
          h("tr", {}, h("th", {}, "Frames"), h("td", {}, `${c.frames.toLocaleString()} read, ${c.dropped.toLocaleString()} dropped`)),
          h("tr", {}, h("th", {}, "Events since start"), h("td", {}, String(c.events))),
          h("tr", {}, h("th", {}, "Reconnects"), h("td", {}, String(c.reconnects))),
        ] : [],
        h("tr", {}, h("th", {}, "Events recorded"), h("td", {}, (c.indexed_events || 0).toLocaleString())),
        h("tr", {}, h("th", {}, "Last event"), h("td", {}, c.last_event_id
          ? h("a", { href: "#/event/" + c.last_event_id }, c.last_event.slice(0, 19).replace("T", " ") + " (" + ago(c.last_event) + ")")
          : (c.last_event ? c.last_event.slice(0, 19).replace("T", " ") : "none"))))));
    const d = st.disk, L = d.limits;
    const other = d.total_bytes ? d.total_bytes - d.free_bytes - d.used_bytes : 0;
    const limits = [
      L.max_size_gb ? `at most ${L.max_size_gb} GB` : null, L.max_age_days ? `at most ${L.max_age_days} days old` : null,
      L.min_free_gb ? `keep ${L.min_free_gb} GB free` : null, L.min_free_percent ? `keep ${L.min_free_percent}% free` : null,
    ].filter(Boolean);
    const disk = h("div", { class: "panel", id: "disk" }, h("h3", {}, "Recordings"),
      h("div", { class: "big" }, bytes(d.used_bytes)), h("div", { class: "dim" }, `${plural(st.events, "event")} in ${d.recordings}`),
      d.total_bytes ? h("div", { class: "diskbar", role: "img", "aria-labelledby": "disk-legend" },
        h("span", { class: "rec", style: `width:${100 * d.used_bytes / d.total_bytes}%` }),
        h("span", { class: "other", style: `width:${100 * Math.max(0, other) / d.total_bytes}%` })) : null,
      d.total_bytes ? h("div", { class: "legend", id: "disk-legend" }, "Disk: ",
        h("span", {}, h("i", { class: "rec" }), `recordings ${bytes(d.used_bytes)}`),
        h("span", {}, h("i", { class: "other" }), `other files ${bytes(Math.max(0, other))}`),
        h("span", {}, h("i", { class: "free" }), `free ${bytes(d.free_bytes)}`)) : null,
      h("table", { class: "kv" },
        h("tr", {}, h("th", {}, "Disk free"), h("td", {}, `${bytes(d.free_bytes)} of ${bytes(d.total_bytes)}`)),
        h("tr", {}, h("th", {}, "Retention"), h("td", {}, limits.length ? limits.join(", ") : "no limits"))));
    view.replaceChildren(h("div", { class: "cards" }, ...cams, disk),
      h("p", { class: "keys" }, `${st.mode === "run" ? "Watching live" : "Review only (motionwatch serve)"} · up ${secs(st.uptime_s)} · JSON at `,
        h("a", { href: "/api/status" }, "/api/status"), " · Prometheus at ", h("a", { href: "/metrics" }, "/metrics")));
  });
}

// --- start -----------------------------------------------------------------------------------

(async function start() {
  try {
    const sess = await api("/api/session");
    Object.assign(state, sess);
  } catch (e) { return fail(e); }
  document.getElementById("nav-live").hidden = !state.live.length;
  const lo = document.getElementById("logout");
  lo.hidden = !state.auth;
  lo.querySelector("input[name=csrf]").value = state.csrf;
  document.getElementById("hint").textContent = state.mode === "run" ? "live" : "review";
  route();
})();
