// dynago's node page. Plain JavaScript, no build step, nothing from another site.
//
// Sources (all on this node unless said):
//   /healthz                      who serves the page
//   /v1/events?snapshot=1         the members, live (EventSource reconnects by itself and
//                                 each reconnection starts with a fresh snapshot)
//   /v1/ring                      the ring: owners per partition, shares (on changes)
//   /v1/stats, /v1/kv/latency     counters and latency histograms, polled every second,
//                                 here and at http://TAG/ of members with an `http` tag
//   /v1/members/NAME/history      a member's history, in words
//   /v1/kv/explain?bucket=&key=   where a key lives and what a quorum read returns
"use strict";

const POLL_MS = 1000;
const FETCH_TIMEOUT_MS = 1500;
const WINDOW_S = 60;
const STATUSES = ["alive", "suspect", "failed", "left"];
const EVENT_KINDS = ["joined", "changed", "suspected", "failed", "left"];

const state = {
  self: null,            // {name, address} of this node
  members: new Map(),    // name -> {name, address, status, incarnation, tags, since}
  ring: null,            // /v1/ring, or null
  ringNote: "",
  stats: new Map(),      // name -> {samples: [{t, ops, keys, lat}], error, busy}
  selected: null,        // member whose history is shown
  keyPartition: null,    // partition of the last explained key
};

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "style") throw new Error("no style attributes: the CSP refuses them");
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

// A colour square. Set through the CSSOM: the page's Content-Security-Policy refuses
// style attributes.
function swatch(color) {
  const node = el("span", {class: "swatch"});
  node.style.background = color;
  return node;
}

async function getJson(url) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(url, {signal: abort.signal, cache: "no-store"});
    const body = await response.json().catch(() => null);
    return {status: response.status, body};
  } finally {
    clearTimeout(timer);
  }
}

// Distinct colours for up to hundreds of owners: golden-angle hues, three lightnesses.
function colorOf(index) {
  const hue = (index * 137.508) % 360;
  const light = [45, 60, 35][Math.floor(index / 7) % 3];
  return `hsl(${hue.toFixed(1)}, 62%, ${light}%)`;
}

function ownerColors() {
  const colors = new Map();
  if (state.ring) state.ring.members.forEach((m, i) => colors.set(m.name, colorOf(i)));
  return colors;
}

function formatSeconds(s) {
  if (s === Infinity) return "> 10 s";
  if (s < 1) return `≤ ${+(s * 1000).toPrecision(3)} ms`;
  return `≤ ${s} s`;
}

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderMembers();
    renderRing();
  });
}

// ------------------------------------------------------------------ members (live)

function followEvents() {
  const stream = new EventSource("/v1/events?snapshot=1");
  const badge = $("stream");
  stream.onopen = () => { badge.textContent = "live"; badge.dataset.state = "live"; };
  stream.onerror = () => {
    badge.textContent = "reconnecting"; badge.dataset.state = "reconnecting";
  };
  stream.addEventListener("snapshot", (message) => {
    state.members = new Map(JSON.parse(message.data).map((m) => [m.name, m]));
    refreshRingSoon();
    render();
  });
  for (const kind of EVENT_KINDS) {
    stream.addEventListener(kind, (message) => {
      const event = JSON.parse(message.data);
      state.members.set(event.name, {
        name: event.name, address: event.address, status: event.status,
        incarnation: event.incarnation, tags: event.tags, since: event.at,
      });
      refreshRingSoon();
      if (event.name === state.selected) showHistory(event.name);
      render();
    });
  }
}

function statusCounts() {
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const m of state.members.values()) counts[m.status] = (counts[m.status] || 0) + 1;
  return counts;
}

function matchesFilter(member, filter) {
  if (!filter) return true;
  const tags = Object.entries(member.tags || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  return `${member.name} ${member.address} ${member.status} ${tags}`.toLowerCase()
    .includes(filter);
}

// Rows are kept per member and updated in place (not rebuilt every second), so that a
// click, a hover or a text selection survives the next poll.
const rows = new Map();  // name -> <tr>
const COLUMNS = ["name", "status", "inc", "tags", "ring", "keys", "ops", "rate", "p99-get",
                 "p99-put"];

function memberRow(name) {
  let row = rows.get(name);
  if (!row) {
    row = el("tr", {"data-member": name});
    for (const field of COLUMNS) row.append(el("td", {"data-field": field}));
    row.cells[0].append(el("span", {class: "swatch"}), el("span", {class: "label"}));
    row.addEventListener("click", () => showHistory(name));
    rows.set(name, row);
  }
  return row;
}

function setText(cell, text) {
  const value = String(text);
  if (cell.textContent !== value) cell.textContent = value;
}

function renderMembers() {
  const counts = statusCounts();
  $("summary").textContent = `${state.members.size} members: ` +
    STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ");
  const shares = new Map((state.ring ? state.ring.members : []).map((m) => [m.name, m]));
  const colors = ownerColors();
  const filter = $("filter").value.trim().toLowerCase();
  for (const name of [...rows.keys()]) if (!state.members.has(name)) rows.delete(name);
  const shown = [...state.members.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .filter((m) => matchesFilter(m, filter))
    .map((m) => {
      const row = memberRow(m.name);
      const cells = row.cells;
      const share = shares.get(m.name);
      const figures = figuresOf(m.name);
      const tags = Object.entries(m.tags || {}).map(([k, v]) => `${k}=${v}`).join(" ");
      row.dataset.status = m.status;
      row.classList.toggle("selected", m.name === state.selected);
      cells[0].firstChild.style.background = colors.get(m.name) || "transparent";
      setText(cells[0].lastChild,
        m.name + (state.self && m.name === state.self.name ? " (this node)" : ""));
      cells[1].className = `status ${m.status}`;
      cells[1].title = `since ${m.since}`;
      setText(cells[1], m.status);
      setText(cells[2], m.incarnation);
      cells[3].className = "tags";
      cells[3].title = tags;
      setText(cells[3], tags);
      setText(cells[4], share ? `${share.partitions} (${(share.share * 100).toFixed(1)}%)` : "");
      setText(cells[5], figures.keys);
      setText(cells[6], figures.ops);
      setText(cells[7], figures.rate);
      setText(cells[8], figures.p99get);
      setText(cells[9], figures.p99put);
      return row;
    });
  const body = $("members").tBodies[0];
  const same = shown.length === body.rows.length && shown.every((r, i) => body.rows[i] === r);
  if (!same) body.replaceChildren(...shown);
  $("stats-note").textContent = statsNote();
}

// ------------------------------------------------------------------ the ring

let ringTimer = null;
function refreshRingSoon() {
  // The node rebuilds its ring a moment after a membership change: ask a little later.
  clearTimeout(ringTimer);
  ringTimer = setTimeout(refreshRing, 400);
}

async function refreshRing() {
  try {
    const {status, body} = await getJson("/v1/ring");
    if (status === 200) { state.ring = body; state.ringNote = ""; }
    else { state.ring = null; state.ringNote = "this node serves no ring (no key-value store)"; }
  } catch (error) {
    state.ringNote = `the ring could not be read: ${error.message || error}`;
  }
  render();
}

function sector(i, count, outer, inner) {
  const a0 = (i / count) * 2 * Math.PI - Math.PI / 2;
  const a1 = ((i + 1) / count) * 2 * Math.PI - Math.PI / 2;
  const large = a1 - a0 > Math.PI ? 1 : 0;
  const p = (r, a) => `${(r * Math.cos(a)).toFixed(3)} ${(r * Math.sin(a)).toFixed(3)}`;
  return `M ${p(outer, a0)} A ${outer} ${outer} 0 ${large} 1 ${p(outer, a1)} ` +
    `L ${p(inner, a1)} A ${inner} ${inner} 0 ${large} 0 ${p(inner, a0)} Z`;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

let drawnRing = null;
function renderRing() {
  const ring = state.ring;
  const picture = $("ring");
  const fallbacks = ring ? ring.fallbacks || [] : [];
  const handoffs = ring ? ring.handoffs || [] : [];
  $("ring-info").textContent = ring
    ? `${ring.partitions} partitions, n_val ${ring.n_val}, ${ring.members.length} owners; ` +
      `${fallbacks.length} fallback(s), ${handoffs.length} handoff(s) in progress`
    : state.ringNote;
  const key = ring ? `${ring.owners.join(",")}|${state.selected}|${state.keyPartition}|` +
    JSON.stringify([fallbacks, handoffs]) : "";
  if (key === drawnRing) return;  // nothing changed: keep the DOM (and the hover) as is
  drawnRing = key;
  picture.replaceChildren();
  $("legend").replaceChildren();
  if (!ring) return;
  const colors = ownerColors();
  const count = ring.partitions;
  picture.classList.toggle("focus", !!state.selected && colors.has(state.selected));
  ring.owners.forEach((owner, i) => {
    const path = svg("path", {d: sector(i, count, 100, 66), fill: colors.get(owner),
                              "data-partition": i, "data-owner": owner});
    if (owner === state.selected) path.classList.add("mine");
    if (i === state.keyPartition) path.classList.add("key");
    path.append(svg("title", {}, `partition ${i}: ${owner}`));
    path.addEventListener("click", () => showHistory(owner));
    picture.append(path);
  });
  // Outside the ring: a fallback standing in for an unhealthy primary (its colour), and
  // an ownership handoff in progress (dashed, the receiver's colour).
  fallbacks.forEach((f) => {
    const arc = svg("path", {d: sector(f.partition, count, 106, 101), class: "fallback",
                             fill: f.fallback ? colors.get(f.fallback) || "#999" : "#c00",
                             "data-partition": f.partition});
    arc.append(svg("title", {}, `partition ${f.partition}: ${f.owner} is not alive; ` +
      (f.fallback ? `${f.fallback} takes its writes as hints` : "no fallback left: " +
       "the coordinator keeps the hints")));
    picture.append(arc);
  });
  handoffs.forEach((h) => {
    const arc = svg("path", {d: sector(h.partition, count, 113, 108), class: "handoff",
                             fill: colors.get(h.to) || "#999", "data-partition": h.partition});
    const progress = h.keys_acked === null ? h.state : `${h.keys_acked} keys acknowledged`;
    arc.append(svg("title", {}, `partition ${h.partition}: handoff ${h.from} → ${h.to} ` +
      `(${progress})`));
    picture.append(arc);
  });
  for (const q of [0, 0.25, 0.5, 0.75]) {
    const a = q * 2 * Math.PI - Math.PI / 2;
    picture.append(svg("text", {x: (58 * Math.cos(a)).toFixed(1),
                                y: (58 * Math.sin(a) + 2.5).toFixed(1)}, Math.round(q * count)));
  }
  picture.append(svg("text", {x: 0, y: -2, class: "big"}, `${count} partitions`));
  picture.append(svg("text", {x: 0, y: 10}, `${ring.members.length} owners, N=${ring.n_val}`));
  const items = ring.members.map((m) => el("li", {"data-owner": m.name,
                                                  onclick: () => showHistory(m.name)},
    swatch(colors.get(m.name)),
    `${m.name} ${m.partitions} (${(m.share * 100).toFixed(1)}%)`));
  $("legend").replaceChildren(...items);
}

// ------------------------------------------------------------------ stats per node

function statsTargets() {
  // [name, base URL]: this node, and every live member with an `http` tag.
  const targets = [];
  if (state.self) targets.push([state.self.name, ""]);
  for (const m of state.members.values()) {
    if (state.self && m.name === state.self.name) continue;
    const http = m.tags && m.tags.http;
    if (http && (m.status === "alive" || m.status === "suspect")) {
      targets.push([m.name, `http://${http}`]);
    }
  }
  return targets;
}

function statsNote() {
  const others = [...state.members.values()].filter(
    (m) => !(state.self && m.name === state.self.name));
  const tagged = others.filter((m) => m.tags && m.tags.http);
  if (others.length && !tagged.length) {
    return "Keys, ops and latency: this node only — the other members carry no http tag " +
      "with their admin address (set one with --tag http=HOST:PORT or dynago tags).";
  }
  const answering = [...state.stats.entries()].filter(([, s]) => !s.error && s.samples.length);
  const failing = [...state.stats.entries()].filter(([, s]) => s.error).map(([n]) => n);
  let note = `Keys, ops and latency of ${answering.length} node(s): this one and the members ` +
    "with an http tag; ops/s and p99 over the last minute.";
  if (failing.length) note += ` Not answering: ${failing.join(", ")}.`;
  return note;
}

async function pollOne(name, base) {
  const entry = state.stats.get(name) || {samples: [], error: null, busy: false};
  state.stats.set(name, entry);
  if (entry.busy) return;
  entry.busy = true;
  try {
    const [stats, latency] = await Promise.all([
      getJson(`${base}/v1/stats`),
      getJson(`${base}/v1/kv/latency`).catch(() => ({status: 0, body: null})),
    ]);
    if (stats.status !== 200 || !stats.body) throw new Error(`HTTP ${stats.status}`);
    const counters = stats.body;
    let ops = 0;
    for (const [k, v] of Object.entries(counters)) {
      if (/^kv_(get|put|delete)_[a-z_]+$/.test(k)) ops += v;
    }
    const lat = latency.status === 200 && latency.body ? latency.body : null;
    const now = performance.now() / 1000;
    entry.samples.push({t: now, ops, keys: counters.kv_store_keys, lat});
    // Keep the newest sample at least WINDOW_S old as the baseline of the window.
    while (entry.samples.length > 2 && entry.samples[1].t <= now - WINDOW_S) {
      entry.samples.shift();
    }
    entry.error = null;
  } catch (error) {
    entry.error = error.message || String(error);
  } finally {
    entry.busy = false;
  }
}

async function pollStats() {
  const targets = statsTargets();
  const wanted = new Set(targets.map(([name]) => name));
  for (const name of [...state.stats.keys()]) if (!wanted.has(name)) state.stats.delete(name);
  await Promise.all(targets.map(([name, base]) => pollOne(name, base)));
  render();
}

// p99 of the requests between two readings: the bucket bound the rank falls in.
function quantile(first, last, op, q) {
  if (!first || !last || !first.lat || !last.lat) return null;
  const a = first.lat.ops[op], b = last.lat.ops[op];
  if (!a || !b) return null;
  const delta = b.cumulative.map((n, i) => n - a.cumulative[i]);
  const total = delta[delta.length - 1];
  if (total <= 0) return null;
  const rank = q * total;
  const bounds = last.lat.bounds;
  for (let i = 0; i < delta.length; i++) {
    if (delta[i] >= rank) return i < bounds.length ? bounds[i] : Infinity;
  }
  return Infinity;
}

function figuresOf(name) {
  const entry = state.stats.get(name);
  const blank = {keys: "", ops: "", rate: "", p99get: "", p99put: ""};
  if (!entry) return blank;
  // Figures of a node that stopped answering would be stale: say so instead.
  if (entry.error) return {...blank, keys: "unreachable"};
  const samples = entry.samples;
  if (!samples.length) return blank;
  const first = samples[0], last = samples[samples.length - 1];
  const span = last.t - first.t;
  const rate = span > 0 ? (last.ops - first.ops) / span : null;
  const p99 = (op) => {
    const v = quantile(first, last, op, 0.99);
    return v === null ? "–" : formatSeconds(v);
  };
  return {
    keys: last.keys === undefined ? "" : last.keys,
    ops: last.ops,
    rate: rate === null ? "…" : rate.toFixed(rate < 10 ? 2 : 0),
    p99get: p99("get"),
    p99put: p99("put"),
  };
}

// ------------------------------------------------------------------ history

async function showHistory(name) {
  state.selected = name;
  $("history-name").textContent = `of ${name}`;
  render();
  const body = $("history").tBodies[0];
  const note = $("history-note");
  try {
    const answer = await getJson(`/v1/members/${encodeURIComponent(name)}/history`);
    if (state.selected !== name) return;
    if (answer.status !== 200) {
      note.textContent = (answer.body && answer.body.error) || `HTTP ${answer.status}`;
      body.replaceChildren();
      return;
    }
    const h = answer.body;
    const now = h.current ? `${h.current.status} at incarnation ${h.current.incarnation}` :
      "no longer in the member map";
    note.textContent = `What ${h.observer} saw happen to ${name} (now ${now}), newest first.`;
    body.replaceChildren(...h.history.slice().reverse().map((e) => el("tr",
      {"data-status": e.status},
      el("td", {title: e.at}, e.at.slice(11, 23)),
      el("td", {class: `status ${e.status}`},
        e.status_before && e.status_before !== e.status ? `${e.status_before} → ${e.status}` :
          e.status),
      el("td", {class: "num"}, e.incarnation),
      el("td", {}, e.reporter || ""),
      el("td", {class: "explanation"}, e.explanation))));
  } catch (error) {
    note.textContent = `history could not be read: ${error.message || error}`;
  }
}

// ------------------------------------------------------------------ key box

async function explainKey(event) {
  event.preventDefault();
  const bucket = $("bucket").value, key = $("key").value;
  const out = $("key-result");
  const query = new URLSearchParams({bucket, key});
  let answer;
  try {
    answer = await getJson(`/v1/kv/explain?${query}`);
  } catch (error) {
    out.replaceChildren(el("p", {class: "error"}, `no answer: ${error.message || error}`));
    return;
  }
  const a = answer.body || {};
  if (answer.status !== 200) {
    out.replaceChildren(el("p", {class: "error", "data-field": "error"},
      a.error || `HTTP ${answer.status}`));
    return;
  }
  state.keyPartition = a.partition;
  render();
  const prefs = el("ol", {"data-field": "preference-list"}, ...a.preference_list.map((name, i) => {
    const m = state.members.get(name);
    const status = m ? m.status : "unknown";
    return el("li", {"data-member": name}, name, " ",
      el("span", {class: `status ${status}`}, status), i === 0 ? " (owner)" : "");
  }));
  const read = a.read;
  let result;
  if (read.error) {
    result = el("span", {class: "error"}, `HTTP ${read.status}: ${read.error}`);
  } else if (!read.found) {
    result = el("span", {}, `not found (r=${a.r} of N=${a.n_val} answered, none holds it)`);
  } else {
    result = el("div", {}, `${read.siblings.length} sibling(s):`, ...read.siblings.map((s) =>
      el("div", {class: "sibling"},
        el("span", {class: "note"}, `vtag ${s.vtag}, ${s.content_type}, ${s.value_bytes} bytes` +
          (s.last_modified ? `, written ${s.last_modified}` : "") +
          (s.value_encoding === "base64" ? ", shown as base64" : "") +
          (s.truncated ? ", first 4 KiB" : "")),
        el("pre", {"data-field": "value"}, s.value))));
  }
  // Which node holds which versions now, and how they got there (dynago kv explain).
  const rows = (a.nodes || []).map((n) => {
    const how = (n.history || []).slice(-3).map((h) =>
      `${h.how}${h.peer ? ` from ${h.peer}` : ""}`).join(", ");
    const held = n.object ? `${n.object.siblings.length} sibling(s)` : "–";
    const hints = (n.hints || []).map((h) => `hint for ${h.owner}`).join(", ");
    return el("tr", {"data-node": n.node},
      el("td", {}, n.node + (n.primary ? "" : " (fallback)")),
      el("td", {"data-field": "copy"}, n.status),
      el("td", {}, held),
      el("td", {"data-field": "behind"}, n.behind === null ? "" : n.behind ? "behind" : "current"),
      el("td", {"data-field": "how"}, [how, hints].filter((t) => t).join("; ")));
  });
  const replicas = rows.length ? el("table", {"data-field": "replicas"},
    el("thead", {}, el("tr", {}, ...["node", "copy", "versions", "", "how it got there"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)) : el("span", {class: "note"}, "no per-node answer");
  out.replaceChildren(el("dl", {},
    el("dt", {}, "key"), el("dd", {}, `${a.bucket} / ${a.key}`),
    el("dt", {}, "partition"), el("dd", {"data-field": "partition"},
      `${a.partition} of ${a.partitions}`),
    el("dt", {}, "preference list"), el("dd", {}, prefs),
    el("dt", {}, `read (r=${a.r})`), el("dd", {"data-field": "read"}, result),
    el("dt", {}, "replicas"), el("dd", {}, replicas),
    read.context ? el("dt", {}, "context") : null,
    read.context ? el("dd", {class: "note", title: read.context},
      read.context.length > 48 ? `${read.context.slice(0, 48)}…` : read.context) : null));
}

// ------------------------------------------------------------------ start

async function start() {
  $("filter").addEventListener("input", render);
  $("key-form").addEventListener("submit", explainKey);
  try {
    const {body} = await getJson("/healthz");
    if (body && body.name) {
      state.self = {name: body.name, address: body.address};
      $("node").textContent = `${body.name} (${body.address})`;
      document.title = `dynago: ${body.name}`;
    }
  } catch (error) {
    $("node").textContent = "this node does not answer /healthz";
  }
  followEvents();
  refreshRing();
  // Handoffs start and end without a membership event, and a failed member leaves the
  // ring after its grace time: read the ring again every few seconds as well.
  setInterval(refreshRing, 3000);
  pollStats();
  setInterval(pollStats, POLL_MS);
}

start();
