// The catalogue preview: pages of GET /v1/shows as cards. Feed data is untrusted: it
// reaches the page only through textContent and attribute setters, never as markup.
"use strict";

const state = { token: "", cursors: [null], page: 0, config: null };

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
  const items = Array.isArray(data.response) ? data.response : [];
  $("grid").replaceChildren(...items.map(card));
  state.cursors.length = state.page + 1;
  if (data.next) state.cursors.push(data.next);
  $("prev").disabled = state.page === 0;
  $("next").disabled = !data.next;
  $("page").textContent = "Page " + (state.page + 1);
  setStatus(items.length + (items.length === 1 ? " show" : " shows") + " on this page.");
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
