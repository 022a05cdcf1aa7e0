// The catalogue preview: pages of GET /v1/shows as cards, kept current by following
// GET /v1/shows/changes from the Changes-Cursor of the first page (list, then follow:
// a 410 lists again, other failures back off). Feed data is untrusted: it reaches the
// page only through textContent and attribute setters, never as markup.
"use strict";

// How often the page asks for changes, and the longest pause after failures (ms).
const FOLLOW_MS = 2000;
const FOLLOW_MAX_MS = 60000;
// The most changes one call returns; a full page means more are waiting.
const CHANGES_LIMIT = 1000;

const state = {
  token: "", cursors: [null], page: 0, config: null,
  // The position of the list shown; null until a first page carries one.
  since: null, timer: null, delay: FOLLOW_MS, loadId: 0,
};

const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// An image URL from a feed, if it is an http(s) URL; anything else is treated as missing.
function imageUrl(raw) {
  if (!raw) return null;
  try {
    const url = new URL(raw, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (_) {
    return null;
  }
}

function placeholder(text) {
  const div = document.createElement("div");
  div.className = "placeholder";
  div.textContent = text;
  return div;
}

function card(item) {
  const el = document.createElement("article");
  el.className = "card";
  el.dataset.slug = item.slug;
  const src = imageUrl(item.image);
  if (src) {
    const img = document.createElement("img");
    img.alt = item.title;
    img.loading = "lazy";
    img.referrerPolicy = "no-referrer";
    // A broken image becomes the placeholder; the rest of the page is not affected.
    img.addEventListener("error", () => {
      img.replaceWith(placeholder("Image unavailable"));
      el.classList.add("broken-image");
    }, { once: true });
    img.src = src;
    el.append(img);
  } else {
    el.append(placeholder("No image"));
    el.classList.add("no-image");
  }
  const title = document.createElement("h2");
  title.className = "title";
  title.textContent = item.title;
  const slug = document.createElement("p");
  slug.className = "slug";
  slug.textContent = item.slug;
  el.append(title, slug);
  return el;
}

async function getDevToken() {
  const c = state.config && state.config.devClient;
  if (!c) return;
  setStatus("Getting a token with the development client…");
  const body = new URLSearchParams({ grant_type: "client_credentials", scope: state.config.scope });
  const res = await fetch(state.config.tokenPath, {
    method: "POST",
    headers: { Authorization: "Basic " + btoa(c.id + ":" + c.secret) },
    body,
  });
  if (!res.ok) {
    setStatus("The token endpoint answered " + res.status, true);
    return;
  }
  $("token").value = (await res.json()).access_token;
}

async function load() {
  state.token = $("token").value.trim();
  if (!state.token) {
    setStatus("Paste an access token first.", true);
    return;
  }
  const params = new URLSearchParams({ limit: $("limit").value });
  const cursor = state.cursors[state.page];
  if (cursor) params.set("cursor", cursor);
  stopFollowing();
  const loadId = ++state.loadId;
  setStatus("Loading…");
  let res;
  try {
    res = await fetch("/v1/shows?" + params, { headers: { Authorization: "Bearer " + state.token } });
  } catch (e) {
    setStatus("The request failed: " + e.message, true);
    return;
  }
  if (!res.ok) {
    let message = "";
    try { message = (await res.json()).error || ""; } catch (_) { /* not JSON */ }
    setStatus("GET /v1/shows answered " + res.status + (message ? ": " + message : ""), true);
    return;
  }
  const data = await res.json();
  if (loadId !== state.loadId) return; // a newer load started meanwhile
  const items = Array.isArray(data.response) ? data.response : [];
  $("grid").replaceChildren(...items.map(card));
  // Only a first page carries a position; a later page keeps following from the
  // position read before it (changes are whole states, so applying one twice is harmless).
  const position = res.headers.get("Changes-Cursor");
  if (position) state.since = position;
  state.cursors.length = state.page + 1;
  if (data.next) state.cursors.push(data.next);
  $("prev").disabled = state.page === 0;
  $("next").disabled = !data.next;
  $("page").textContent = "Page " + (state.page + 1);
  setStatus(items.length + (items.length === 1 ? " show" : " shows") + " on this page.");
  state.delay = FOLLOW_MS;
  follow(loadId);
}

function stopFollowing() {
  clearTimeout(state.timer);
  state.timer = null;
}

function follow(loadId) {
  stopFollowing();
  if (state.since === null || loadId !== state.loadId) return;
  state.timer = setTimeout(() => poll(loadId), state.delay);
}

// A put replaces the show's card where it is, or adds the card at the end of the page
// shown (the list's order, episode count then slug, needs fields the catalogue's items
// do not carry; the next Load puts it in its place). A remove takes the card away.
function apply(changes) {
  const grid = $("grid");
  const shown = new Map([...grid.children].map((el) => [el.dataset.slug, el]));
  let applied = 0;
  for (const change of changes) {
    if (change.op === "put" && change.item && typeof change.item.slug === "string") {
      const el = card(change.item);
      const old = shown.get(change.item.slug);
      if (old) {
        old.replaceWith(el);
      } else {
        el.classList.add("added");
        grid.append(el);
      }
      shown.set(change.item.slug, el);
      applied += 1;
    } else if (change.op === "remove" && typeof change.slug === "string") {
      const old = shown.get(change.slug);
      if (old) {
        old.remove();
        shown.delete(change.slug);
        applied += 1;
      }
    }
  }
  return applied;
}

// One round of following: every page of changes since the position, then the next round.
async function poll(loadId) {
  let applied = 0;
  try {
    for (;;) {
      const params = new URLSearchParams({ since: state.since, limit: String(CHANGES_LIMIT) });
      const res = await fetch("/v1/shows/changes?" + params, {
        headers: { Authorization: "Bearer " + state.token },
      });
      if (loadId !== state.loadId) return;
      if (res.status === 410) {
        // The position is too old (or not this catalogue's): list again from the start.
        state.since = null;
        setStatus("The catalogue moved on too far to follow; listing again…");
        await restart();
        return;
      }
      if (!res.ok) throw new Error("GET /v1/shows/changes answered " + res.status);
      const data = await res.json();
      if (loadId !== state.loadId) return;
      const changes = Array.isArray(data.changes) ? data.changes : [];
      applied += apply(changes);
      const moved = typeof data.next === "string" && data.next !== state.since;
      if (moved) state.since = data.next;
      if (changes.length < CHANGES_LIMIT || !moved) break;
    }
    state.delay = FOLLOW_MS;
    if (applied > 0) {
      const n = $("grid").children.length;
      setStatus(n + (n === 1 ? " show" : " shows") + " on this page; " + applied +
        (applied === 1 ? " change" : " changes") + " applied.");
    }
  } catch (e) {
    if (loadId !== state.loadId) return;
    // Back off: twice as long each time, at most FOLLOW_MAX_MS; the list stays as shown.
    state.delay = Math.min(state.delay * 2, FOLLOW_MAX_MS);
    setStatus("Following changes failed (" + e.message + "); trying again in " +
      Math.round(state.delay / 1000) + " s.", true);
  }
  follow(loadId);
}

function restart() {
  state.cursors = [null];
  state.page = 0;
  return load();
}

// `?limit=N` (1 to 100) picks the page size, e.g. for a bookmark.
function limitFromUrl() {
  const n = Number(new URLSearchParams(window.location.search).get("limit"));
  if (!Number.isInteger(n) || n < 1 || n > 100) return;
  const select = $("limit");
  if (![...select.options].some((o) => o.value === String(n))) {
    const option = document.createElement("option");
    option.textContent = String(n);
    select.prepend(option);
  }
  select.value = String(n);
}

document.addEventListener("DOMContentLoaded", async () => {
  limitFromUrl();
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); restart(); });
  $("limit").addEventListener("change", restart);
  $("prev").addEventListener("click", () => { state.page -= 1; load(); });
  $("next").addEventListener("click", () => { state.page += 1; load(); });
  $("dev-token").addEventListener("click", async () => { await getDevToken(); await restart(); });
  try {
    state.config = await (await fetch("/docs/config.json")).json();
  } catch (_) {
    state.config = null;
  }
  if (state.config && state.config.devClient) {
    // Local mode: the development client gets a token and the first page loads at once.
    $("dev-token").hidden = false;
    await getDevToken();
    if ($("token").value) await restart();
  } else {
    setStatus("Paste an access token with the shows.read scope, then Load.");
  }
});
