// Voluntree dashboard: live signups over WebSocket, the demo channel and the classifier
// playground. Plain JS, no dependencies. All data from the server is rendered with
// textContent / attributes, never parsed as HTML.
'use strict';

(() => {
  const TAIL = 100;            // events replayed on a fresh load
  const MAX_ITEMS = 500;       // signups kept in the DOM
  const MAX_SEEN = 5000;       // event / message ids remembered for dedupe
  const BACKOFF_MIN = 500;     // ms, first reconnect delay
  const BACKOFF_MAX = 10000;   // ms, cap
  const REL_TIME_EVERY = 30000;
  const FRESH_MS = 4000;       // highlight of a newly arrived signup
  const DEMO_WAIT_MS = 10000;  // after this, tell the user the comment produced no signup

  const $ = (sel) => document.querySelector(sel);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const safely = (name, fn) => {
    try { fn(); } catch (err) { console.error(name + ':', err); }
  };

  // ---------------------------------------------------------------- helpers

  // Event ids are Redis stream ids "<ms>-<seq>"; compare them numerically.
  function parseId(id) {
    const m = /^(\d+)-(\d+)$/.exec(id);
    return m ? [Number(m[1]), Number(m[2])] : null;
  }
  function cmpId(a, b) {
    if (a === b) return 0;
    if (!a) return -1;
    if (!b) return 1;
    const pa = parseId(a), pb = parseId(b);
    if (pa && pb) return (pa[0] - pb[0]) || (pa[1] - pb[1]);
    return a < b ? -1 : 1;
  }

  // A Set that forgets its oldest entries beyond a bound.
  function boundedSet(max) {
    const s = new Set();
    return {
      has: (k) => s.has(k),
      add(k) {
        s.add(k);
        if (s.size > max) {
          let drop = s.size - Math.floor(max * 0.8);
          for (const old of s) {
            if (drop-- <= 0) break;
            s.delete(old);
          }
        }
      },
      clear: () => s.clear(),
    };
  }

  function relTime(ms, now) {
    const s = Math.floor((now - ms) / 1000);
    if (s < 45) return 'just now'; // also covers small clock skews into the future
    if (s < 90) return '1 min ago';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ago';
    const h = Math.floor(m / 60);
    if (h < 24) return h + ' h ago';
    const d = Math.floor(h / 24);
    if (d < 7) return d === 1 ? 'yesterday' : d + ' days ago';
    return new Date(ms).toLocaleDateString();
  }

  function shorten(text, n) {
    const t = String(text).replace(/\s+/g, ' ').trim();
    return t.length > n ? t.slice(0, n - 1) + '…' : t;
  }

  // ---------------------------------------------------------------- health (header pill)

  async function health() {
    const pill = $('#health');
    try {
      const r = await fetch('/healthz', { cache: 'no-store' });
      const j = await r.json();
      pill.textContent = j.status === 'ok' ? 'all systems ok'
        : 'degraded: ' + Object.entries(j.checks || {}).filter(([, v]) => v !== 'ok').map(([k]) => k).join(', ');
      pill.className = 'pill ' + (j.status === 'ok' ? 'ok' : 'bad');
    } catch (e) {
      pill.textContent = 'server unreachable';
      pill.className = 'pill bad';
    }
  }

  // ---------------------------------------------------------------- notice banner

  function showNotice(text) {
    $('#notice-text').textContent = text;
    $('#notice').hidden = false;
  }
  function hideNotice() { $('#notice').hidden = true; }

  // ---------------------------------------------------------------- live feed

  const feed = {
    ws: null,
    post: '',          // post id filter ('' = all)
    lastId: '',        // newest event id seen: the `since` of the next connection
    history: true,     // events of the current load's tail replay: not counted as new, not highlighted
    ready: false,      // a ready frame arrived since the last (re)load
    usedSince: false,  // the current connection asked for since=
    attempt: 0,        // consecutive failed connections (backoff exponent)
    retryTimer: 0,
    tickTimer: 0,
    retryAt: 0,
    session: 0,        // signups that arrived after the page (or filter) loaded
    trimmed: false,
    state: '',
  };
  const seenEvents = boundedSet(MAX_SEEN);
  const seenMessages = boundedSet(MAX_SEEN);
  let list;

  const KIND_LABELS = { comment: 'comment', message: 'Messenger', postback: 'Messenger button' };

  function setConn(state) {
    const pill = $('#conn-status');
    const changed = feed.state !== state;
    feed.state = state;
    pill.dataset.state = state;
    let text;
    if (state === 'live') text = feed.post ? 'live · post ' + feed.post : 'live';
    else if (state === 'reconnecting') {
      const secs = Math.max(1, Math.ceil((feed.retryAt - Date.now()) / 1000));
      text = 'reconnecting in ' + secs + ' s';
    } else text = 'connecting…';
    $('#conn-text').textContent = text;
    $('#conn-retry').hidden = state !== 'reconnecting';
    if (changed) {
      // The visible pill ticks every second while reconnecting; announce only transitions.
      $('#conn-announce').textContent = state === 'live' ? 'Live feed connected'
        : state === 'reconnecting' ? 'Live feed disconnected, reconnecting' : '';
    }
  }

  function wsURL() {
    const params = new URLSearchParams();
    if (feed.post) params.set('post', feed.post);
    if (feed.lastId) params.set('since', feed.lastId);
    else params.set('tail', String(TAIL));
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return proto + '//' + location.host + '/ws/signups?' + params.toString();
  }

  function stopTimers() {
    clearTimeout(feed.retryTimer);
    clearInterval(feed.tickTimer);
    feed.retryTimer = feed.tickTimer = 0;
  }

  function detach() {
    const ws = feed.ws;
    if (!ws) return;
    feed.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000, 'reconnect'); } catch (e) { /* already closed */ }
  }

  function connect() {
    stopTimers();
    detach();
    feed.usedSince = !!feed.lastId;
    setConn('connecting');
    let ws;
    try {
      ws = new WebSocket(wsURL());
    } catch (err) {
      console.error('websocket:', err);
      scheduleReconnect();
      return;
    }
    feed.ws = ws;
    ws.onmessage = (m) => { if (feed.ws === ws) onFrame(m.data); };
    ws.onclose = () => {
      if (feed.ws !== ws) return; // replaced on purpose
      feed.ws = null;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    stopTimers();
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, feed.attempt));
    feed.attempt = Math.min(feed.attempt + 1, 16);
    const delay = Math.min(BACKOFF_MAX, Math.round(base * (0.8 + Math.random() * 0.4)));
    feed.retryAt = Date.now() + delay;
    feed.retryTimer = setTimeout(connect, delay);
    feed.tickTimer = setInterval(() => setConn('reconnecting'), 250);
    setConn('reconnecting');
  }

  function reconnectNow() {
    if (feed.state !== 'reconnecting') return;
    feed.attempt = 0;
    connect();
  }

  function onFrame(data) {
    let msg;
    try { msg = JSON.parse(data); } catch (e) { console.warn('ignoring a non-JSON frame'); return; }
    const frames = Array.isArray(msg) ? msg : [msg];
    for (const f of frames) {
      if (!f || typeof f !== 'object') continue;
      if (f.type === 'interest') addEvent(f);
      else if (f.type === 'ready') onReady(f);
      else if (f.type === 'gap') { onGap(); return; }
      else if (typeof f.id === 'string' && parseId(f.id) && cmpId(f.id, feed.lastId) > 0) {
        feed.lastId = f.id; // another kind of event of the same log: resume after it too
      }
    }
  }

  function onReady(f) {
    feed.attempt = 0;
    if (typeof f.last_id === 'string' && f.last_id && cmpId(f.last_id, feed.lastId) > 0) feed.lastId = f.last_id;
    feed.history = false;
    feed.ready = true;
    list.setAttribute('aria-busy', 'false');
    setConn('live');
    updateCounts();
  }

  function onGap() {
    if (!feed.usedSince) {
      console.warn('gap frame on a tail connection: ignored');
      return;
    }
    showNotice('Some signups were missed while the connection was down (they are older than the server keeps). '
      + 'The list was reloaded with the latest ' + TAIL + '.');
    resetList();
    feed.attempt = 0;
    connect();
  }

  function resetList() {
    list.replaceChildren();
    list.setAttribute('aria-busy', 'true');
    seenEvents.clear();
    feed.lastId = '';
    feed.history = true;
    feed.ready = false;
    feed.trimmed = false;
    updateCounts();
  }

  function addEvent(ev) {
    if (typeof ev.id !== 'string' || !ev.id) { console.warn('event without id ignored'); return; }
    if (cmpId(ev.id, feed.lastId) > 0) feed.lastId = ev.id;
    if (seenEvents.has(ev.id)) return;
    seenEvents.add(ev.id);
    const it = (ev.interest && typeof ev.interest === 'object') ? ev.interest : {};
    const postId = String(ev.post_id || it.post_id || '');
    if (feed.post && postId !== feed.post) return; // the server filters; be defensive
    const li = renderSignup(ev, it, postId);
    insertNewestFirst(li);
    if (!feed.history) {
      feed.session++;
      li.classList.add('fresh');
      setTimeout(() => li.classList.remove('fresh'), FRESH_MS);
    }
    while (list.childElementCount > MAX_ITEMS) {
      list.lastElementChild.remove();
      feed.trimmed = true;
    }
    updateCounts();
    if (it.id) {
      seenMessages.add(String(it.id));
      demoSignupArrived(String(it.id), it);
    }
  }

  function insertNewestFirst(li) {
    const id = li.dataset.eventId;
    let ref = list.firstElementChild;
    while (ref && cmpId(ref.dataset.eventId, id) > 0) ref = ref.nextElementSibling;
    list.insertBefore(li, ref);
  }

  function renderSignup(ev, it, postId) {
    const li = el('li', 'signup');
    li.dataset.eventId = ev.id;
    li.dataset.messageId = String(it.id || '');
    li.dataset.postId = postId;
    if (it.kind) li.dataset.kind = String(it.kind);

    const head = el('div', 'signup-head');
    head.append(el('span', 'name', it.sender_name ? String(it.sender_name) : 'Anonymous'));
    if (it.kind) {
      const kind = String(it.kind);
      const badge = el('span', 'kind kind-' + kind.replace(/[^a-z]/gi, ''), KIND_LABELS[kind] || kind);
      badge.title = 'via ' + kind;
      head.append(badge);
    }
    const stamp = it.created_at || it.received_at || it.recorded_at || '';
    const ts = Date.parse(stamp);
    if (!Number.isNaN(ts)) {
      const time = el('time', null, relTime(ts, Date.now()));
      time.dateTime = String(stamp);
      time.dataset.ts = String(ts);
      time.title = new Date(ts).toLocaleString();
      head.append(time);
    }
    li.append(head);

    const text = typeof it.text === 'string' ? it.text.trim() : '';
    li.append(text ? el('p', 'text', text) : el('p', 'text none', '(no text)'));

    const meta = el('div', 'signup-meta');
    if (postId) {
      const post = el('button', 'link-button post-link');
      post.type = 'button';
      post.title = 'Show only the signups of this post';
      post.append('post ', el('code', null, postId));
      post.addEventListener('click', () => setFilter(postId));
      meta.append(post);
    }
    const c = Number(it.confidence);
    if (it.confidence !== undefined && it.confidence !== null && Number.isFinite(c)) {
      const pct = Math.max(0, Math.min(100, Math.round(c * 100)));
      const conf = el('span', 'conf');
      conf.title = 'model confidence ' + (c * 100).toFixed(1) + '%';
      const bar = el('span', 'conf-bar');
      bar.setAttribute('aria-hidden', 'true');
      const fill = el('span', 'conf-fill');
      fill.style.width = pct + '%';
      bar.append(fill);
      conf.append(bar, el('span', 'sr-only', 'confidence '), el('span', 'conf-pct', pct + '%'));
      meta.append(conf);
    }
    li.append(meta);
    return li;
  }

  function updateCounts() {
    const shown = list.childElementCount;
    $('#count-session').textContent = String(feed.session);
    $('#count-shown').textContent = String(shown);
    const empty = $('#empty');
    empty.hidden = shown > 0;
    if (!feed.ready) empty.textContent = 'Loading recent signups…';
    else if (feed.post) empty.textContent = 'No signups for post “' + feed.post + '” yet. They appear here the moment someone comments or messages that they want to help.';
    else empty.textContent = 'No signups yet. They appear here the moment someone comments or messages that they want to help.';
    const note = $('#list-note');
    note.hidden = !feed.trimmed;
    note.textContent = 'Only the latest ' + MAX_ITEMS + ' signups are kept on this page.';
  }

  function refreshTimes() {
    const now = Date.now();
    for (const t of document.querySelectorAll('#signups time[data-ts]')) {
      const txt = relTime(Number(t.dataset.ts), now);
      if (t.textContent !== txt) t.textContent = txt;
    }
  }

  // ---------------------------------------------------------------- post filter

  function renderFilter() {
    $('#post-filter').value = feed.post;
    $('#filter-value').textContent = feed.post;
    $('#filter-info').hidden = !feed.post;
  }

  function setFilter(value) {
    const post = String(value || '').trim();
    if (post === feed.post) { renderFilter(); return; }
    feed.post = post;
    try {
      const u = new URL(location.href);
      if (post) u.searchParams.set('post', post); else u.searchParams.delete('post');
      history.replaceState(null, '', u.toString());
    } catch (e) { /* file:// or sandboxed: the filter still works */ }
    renderFilter();
    resetList();
    feed.session = 0;
    feed.attempt = 0;
    updateCounts();
    connect();
  }

  function initFeed() {
    list = $('#signups');
    try { feed.post = (new URLSearchParams(location.search).get('post') || '').trim(); } catch (e) { feed.post = ''; }
    renderFilter();
    $('#filter-form').addEventListener('submit', (e) => { e.preventDefault(); setFilter($('#post-filter').value); });
    $('#post-filter').addEventListener('change', (e) => setFilter(e.target.value));
    $('#post-filter').addEventListener('input', (e) => { if (e.target.value === '' && feed.post) setFilter(''); });
    $('#filter-clear').addEventListener('click', () => { setFilter(''); $('#post-filter').focus(); });
    $('#conn-retry').addEventListener('click', reconnectNow);
    $('#notice-close').addEventListener('click', hideNotice);
    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });
    setInterval(refreshTimes, REL_TIME_EVERY);
    updateCounts();
    if (!('WebSocket' in window)) {
      showNotice('This browser does not support WebSockets: the live feed is unavailable.');
      return;
    }
    connect();
  }

  // ---------------------------------------------------------------- demo channel

  const demo = { postId: '', sending: false, pending: new Map() };

  function setDemoStatus(text, kind) {
    const s = $('#demo-status');
    s.textContent = text;
    s.className = 'demo-status' + (kind ? ' ' + kind : '');
  }

  function demoErrorText(status, body) {
    if (body && typeof body.error === 'string' && body.error) return 'Not sent: ' + body.error;
    if (status === 400) return 'Not sent: the server rejected the comment.';
    if (status === 404) return 'Not sent: the demo is not enabled on this server.';
    if (status === 413) return 'Not sent: the comment is too long.';
    if (status === 503) return 'Not sent: the pipeline is busy or unavailable, try again in a moment.';
    return 'Not sent: the server answered ' + status + '.';
  }

  function demoSignupArrived(messageId, it) {
    const p = demo.pending.get(messageId);
    if (!p) return;
    clearTimeout(p.timer);
    demo.pending.delete(messageId);
    const c = Number(it.confidence);
    const conf = Number.isFinite(c) ? ' (' + Math.round(c * 100) + '%)' : '';
    setDemoStatus('“' + p.short + '” was classified as interested' + conf + ' and is now in the live list.', 'ok');
  }

  function trackDemo(messageId, postId, text) {
    const short = shorten(text, 60);
    const hidden = feed.post && postId && feed.post !== postId
      ? ' Your post filter hides the demo post: clear it to see the signup.' : '';
    if (messageId && seenMessages.has(messageId)) {
      setDemoStatus('“' + short + '” was classified as interested and is now in the live list.', 'ok');
      return;
    }
    setDemoStatus('Sent — if the model classifies it as interest, it appears in the live list within a moment.' + hidden, 'ok');
    if (!messageId) return;
    const timer = setTimeout(() => {
      demo.pending.delete(messageId);
      setDemoStatus('No signup from “' + short + '”: the model read it as something other than interest '
        + '(a question, a donation, a decline…) — only comments expressing interest become signups.' + hidden, '');
    }, DEMO_WAIT_MS);
    demo.pending.set(messageId, { timer, short });
  }

  async function sendDemo(e) {
    e.preventDefault();
    if (demo.sending) return;
    const nameIn = $('#demo-name'), textIn = $('#demo-text');
    const name = nameIn.value.trim(), text = textIn.value.trim();
    nameIn.removeAttribute('aria-invalid');
    textIn.removeAttribute('aria-invalid');
    if (!name) {
      nameIn.setAttribute('aria-invalid', 'true');
      setDemoStatus('Enter a name first.', 'error');
      nameIn.focus();
      return;
    }
    if (!text) {
      textIn.setAttribute('aria-invalid', 'true');
      setDemoStatus('Write a comment first.', 'error');
      textIn.focus();
      return;
    }
    demo.sending = true;
    $('#demo-send').disabled = true;
    setDemoStatus('Sending…', '');
    try {
      const r = await fetch('/api/v1/demo/comments', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ name, text }),
      });
      let body = null;
      try { body = await r.json(); } catch (err) { body = null; }
      if (!r.ok) {
        setDemoStatus(demoErrorText(r.status, body), 'error');
        return;
      }
      textIn.value = '';
      trackDemo(body && body.message_id ? String(body.message_id) : '', String((body && body.post_id) || demo.postId), text);
    } catch (err) {
      setDemoStatus('Not sent: the server could not be reached.', 'error');
    } finally {
      demo.sending = false;
      $('#demo-send').disabled = false;
    }
  }

  async function initDemo() {
    const form = $('#demo-form');
    form.addEventListener('submit', sendDemo);
    $('#demo-text').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
        e.preventDefault();
        if (form.requestSubmit) form.requestSubmit();
        else form.dispatchEvent(new Event('submit', { cancelable: true }));
      }
    });
    const samples = ['Ada', 'Grace', 'Alan', 'Katherine', 'Linus', 'Margaret'];
    for (const b of document.querySelectorAll('#demo .example')) {
      b.addEventListener('click', () => {
        const nameIn = $('#demo-name');
        if (!nameIn.value.trim()) nameIn.value = samples[Math.floor(Math.random() * samples.length)];
        const textIn = $('#demo-text');
        textIn.value = b.dataset.text || b.textContent;
        textIn.removeAttribute('aria-invalid');
        textIn.focus();
      });
    }

    let cfg = null;
    try {
      const r = await fetch('/api/v1/demo', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (r.ok) cfg = await r.json();
    } catch (err) { cfg = null; }
    if (!cfg || cfg.enabled !== true) return; // 404, error or disabled: no demo card
    demo.postId = String(cfg.post_id || '');
    if (cfg.post_message || demo.postId) {
      $('#demo-post-message').textContent = String(cfg.post_message || '');
      $('#demo-post-id').textContent = demo.postId;
      $('#demo-post').hidden = false;
    }
    $('#demo').hidden = false;
    $('#layout').classList.add('has-demo');
  }

  // ---------------------------------------------------------------- classifier playground
  // (a browser test reads the rendered `class="intent <intent>"` cells after the auto-run)

  async function classify() {
    const texts = $('#texts').value.split('\n').filter((t) => t.trim() !== '');
    $('#error').textContent = '';
    $('#go').disabled = true;
    try {
      const r = await fetch('/api/v1/classify', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ texts }),
      });
      const j = await r.json();
      if (!r.ok) throw new Error(j.error || r.statusText);
      const body = $('#out tbody');
      body.replaceChildren();
      j.results.forEach((res, i) => {
        const tr = document.createElement('tr');
        const text = el('td', null, texts[i]);
        const intent = document.createElement('td');
        intent.append(el('span', 'intent ' + res.intent, res.intent));
        const conf = el('td', null, (res.confidence * 100).toFixed(1) + '%');
        const bar = el('div', 'bar');
        bar.style.width = (res.confidence * 100) + '%';
        conf.append(bar);
        tr.append(text, intent, conf);
        body.append(tr);
      });
      $('#out').hidden = false;
    } catch (e) {
      $('#error').textContent = e.message;
    } finally {
      $('#go').disabled = false;
    }
  }

  function initPlayground() {
    $('#go').addEventListener('click', classify);
    classify(); // show the examples classified on arrival
  }

  // ---------------------------------------------------------------- start

  function start() {
    safely('playground', initPlayground);
    safely('health', () => { health(); setInterval(health, 10000); });
    safely('feed', initFeed);
    safely('demo', () => { initDemo().catch((err) => console.error('demo:', err)); });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
