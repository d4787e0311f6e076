// The web chat page: /chat/{signup-id}. A session token (kept for this tab) opens
// /ws/chat; messages are frames {"id","from","text","at","options"}; after a disconnect the
// socket reconnects with since=<last id>, so nothing is lost; the token is refreshed before
// its hour is up.
"use strict";
(() => {
  const signupID = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
  const store = `voluntree-chat:${signupID}`;
  const $ = (id) => document.getElementById(id);
  let token = null, lastID = "", ws = null, retry = 500, refreshTimer = null;
  const pending = new Map(); // frames sent and not yet echoed by the server, by id: resent on reconnect

  function status(text, state) { $("chat-status").textContent = text; $("chat-status").dataset.state = state; }
  function showError(id, text) { const e = $(id); e.textContent = text || ""; e.hidden = !text; }

  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  function save(t, expiresIn) {
    token = t;
    sessionStorage.setItem(store, JSON.stringify({ token: t, lastID }));
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, Math.max(60, expiresIn - 300) * 1000);
  }

  async function refresh() {
    try { const s = await post("/api/v1/chat/sessions/refresh", { token }); save(s.token, s.expires_in); }
    catch (e) { showError("chat-error", `Your session could not be renewed: ${e.message}`); }
  }

  function render(m) {
    if (m.error) { showError("chat-error", m.error); return; }
    if (m.client_id) pending.delete(m.client_id);
    if (!m.id || (lastID && !after(m.id, lastID))) return;
    lastID = m.id;
    sessionStorage.setItem(store, JSON.stringify({ token, lastID }));
    const li = document.createElement("li");
    li.dataset.from = m.from;
    li.dataset.id = m.id;
    li.textContent = m.text;
    const t = document.createElement("time");
    t.dateTime = m.at;
    t.textContent = (m.from === "volunteer" ? "You" : m.from === "admin" ? "Team" : "Bot") + " · " + new Date(m.at).toLocaleTimeString();
    li.prepend(t);
    $("chat-log").append(li);
    li.scrollIntoView({ block: "end" });
    const opts = $("chat-options");
    if (m.from !== "volunteer") {
      opts.replaceChildren(...(m.options || []).map((o) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = o.title;
        b.addEventListener("click", () => { send({ payload: o.payload, text: o.title }); opts.replaceChildren(); });
        return b;
      }));
    }
  }

  function after(a, b) { // Redis stream ids: "ms-seq"
    const [am, as] = a.split("-").map(BigInt), [bm, bs] = b.split("-").map(BigInt);
    return am > bm || (am === bm && as > bs);
  }

  function send(frame) {
    frame.id = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2)).replace(/[^A-Za-z0-9_-]/g, "");
    pending.set(frame.id, frame);
    showError("chat-error", "");
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    else status("reconnecting… your message will be sent", "connecting");
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws/chat?token=${encodeURIComponent(token)}&since=${encodeURIComponent(lastID)}`);
    status("connecting…", "connecting");
    ws.onopen = () => {
      status("connected", "open");
      retry = 500;
      for (const f of pending.values()) ws.send(JSON.stringify(f)); // taken once, whatever happened before
    };
    ws.onmessage = (ev) => { try { render(JSON.parse(ev.data)); } catch (_) { /* not ours */ } };
    ws.onclose = (ev) => {
      if (ev.code === 1008) { // the token expired: start again
        sessionStorage.removeItem(store);
        status("session ended", "closed");
        $("chat").hidden = true; $("start-form").hidden = false;
        showError("start-error", "Your chat session has ended. Start a new one.");
        return;
      }
      status("reconnecting…", "connecting");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  async function open() {
    $("start-form").hidden = true;
    $("chat").hidden = false;
    // The history first, over HTTP (a quick first paint); the socket then goes on from it.
    try {
      const r = await fetch(`/api/v1/chat/history?token=${encodeURIComponent(token)}&since=${encodeURIComponent(lastID)}`, { cache: "no-store" });
      if (r.ok) for (const m of (await r.json()).items || []) render(m);
    } catch (_) { /* the socket replays it */ }
    connect();
    $("chat-input").focus();
  }

  $("start-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("start-error", "");
    try {
      const s = await post("/api/v1/chat/sessions", { signup_id: signupID, name: $("start-name").value });
      if (s.signup_title) { $("chat-title").textContent = s.signup_title; document.title = `${s.signup_title} — chat`; }
      lastID = "";
      save(s.token, s.expires_in);
      open();
    } catch (e) { showError("start-error", e.message); }
  });

  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text) return;
    send({ text });
    $("chat-input").value = "";
  });

  // A link may carry a session's token (#token=wct_…, e.g. from the organisers): it is taken
  // out of the address bar and kept for this tab.
  const linked = new URLSearchParams(location.hash.slice(1)).get("token");
  if (linked && /^wct_[A-Za-z0-9_-]+$/.test(linked)) {
    history.replaceState(null, "", location.pathname);
    sessionStorage.setItem(store, JSON.stringify({ token: linked, lastID: "" }));
  }
  const saved = JSON.parse(sessionStorage.getItem(store) || "null");
  if (saved && saved.token) { token = saved.token; lastID = ""; open().then(refresh); } // renewed once open: the old token must not vanish under it
  else {
    // A link may carry the person's name (#name=Grace): the chat starts at once.
    const name = new URLSearchParams(location.hash.slice(1)).get("name");
    if (name) {
      history.replaceState(null, "", location.pathname);
      $("start-name").value = name.slice(0, 200);
      $("start-form").requestSubmit();
    }
  }
})();
