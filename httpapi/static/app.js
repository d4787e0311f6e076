// Voluntree dashboard: live signups over WebSocket, the demo channel, the organization's
// settings (admin API) and the classifier playground. Plain JS, no dependencies. All data
// from the server is rendered with textContent / attributes, never parsed as HTML.
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

  // mark records a moment of the page's start-up once (performance marks: what a load test or
  // a browser's performance panel reads as "interactive").
  function mark(name) {
    try { if (performance.getEntriesByName(name).length === 0) performance.mark(name); } catch (e) { /* no User Timing */ }
  }
  window.voluntreeMark = mark;

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
      pill.textContent = (j.status === 'ok' ? 'all systems ok'
        : 'degraded: ' + Object.entries(j.checks || {}).filter(([, v]) => v !== 'ok').map(([k]) => k).join(', '))
        + (j.model ? ' · model ' + j.model : '');
      pill.title = 'Server health (/healthz)' + (j.model ? '; the intent model this node serves: ' + j.model : '');
      pill.className = 'pill ' + (j.status === 'ok' ? 'ok' : 'bad');
    } catch (e) {
      pill.textContent = 'server unreachable';
      pill.className = 'pill bad';
    }
  }

  // ---------------------------------------------------------------- notice banner

  // kind: '' (a warning), 'ok' (a success) or 'bad' (a failure).
  function showNotice(text, kind) {
    $('#notice-text').textContent = text;
    $('#notice').className = 'notice' + (kind ? ' ' + kind : '');
    $('#notice').hidden = false;
  }
  function hideNotice() { $('#notice').hidden = true; }

  // ---------------------------------------------------------------- live feed

  const feed = {
    ws: null,
    post: '',          // post id filter ('' = all)
    intent: '',        // intent filter: '' interests only, an intent's messages, or 'all'
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
    gen: 0,            // bumped by every connect: a ticket bought for an older attempt is dropped
  };
  const seenEvents = boundedSet(MAX_SEEN);
  const seenMessages = boundedSet(MAX_SEEN);
  let list;

  const KIND_LABELS = { comment: 'comment', message: 'Messenger', postback: 'Messenger button' };
  const INTENT_LABELS = { interested: 'signup', question: 'question', donate: 'donation', decline: 'decline', thanks: 'thanks', other: 'other' };

  function setConn(state) {
    const pill = $('#conn-status');
    const changed = feed.state !== state;
    feed.state = state;
    pill.dataset.state = state;
    let text;
    if (state === 'live') text = feed.post ? 'live · post ' + feed.post : 'live';
    else if (state === 'signed-out') text = 'no organization';
    else if (state === 'reconnecting') {
      const secs = Math.max(1, Math.ceil((feed.retryAt - Date.now()) / 1000));
      text = 'reconnecting in ' + secs + ' s';
    } else text = 'connecting…';
    $('#conn-text').textContent = text;
    $('#conn-retry').hidden = state !== 'reconnecting';
    $('#feed-signin').hidden = state !== 'signed-out';
    if (changed) updateCounts();
    if (changed) {
      // The visible pill ticks every second while reconnecting; announce only transitions.
      $('#conn-announce').textContent = state === 'live' ? 'Live feed connected'
        : state === 'reconnecting' ? 'Live feed disconnected, reconnecting' : '';
    }
  }

  // The feed is one organization's: each connection needs a fresh single-use ticket, bought
  // with the admin API token (POST /api/v1/ws-tickets), since a browser cannot send an
  // Authorization header with a WebSocket.
  function wsURL(ticket) {
    const params = new URLSearchParams();
    params.set('ticket', ticket);
    if (feed.post) params.set('post', feed.post);
    if (feed.intent) params.set('intent', feed.intent);
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

  async function connect() {
    stopTimers();
    detach();
    const gen = ++feed.gen;
    if (!org.token) {
      setConn('signed-out');
      return;
    }
    feed.usedSince = !!feed.lastId;
    setConn('connecting');
    let ticket;
    try {
      const { data } = await api('POST', '/ws-tickets');
      ticket = typeof data.ticket === 'string' ? data.ticket : '';
      if (!ticket) throw new ApiError(0, 'no ticket in the answer');
    } catch (err) {
      if (gen !== feed.gen) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === -1)) {
        setConn('signed-out'); // the token was refused (the Organization card says so) or changed
        return;
      }
      console.warn('live feed ticket:', err.message);
      scheduleReconnect();
      return;
    }
    if (gen !== feed.gen) return;
    let ws;
    try {
      ws = new WebSocket(wsURL(ticket));
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

  // restartFeed shows another organization's feed (or none): called when the token changes.
  function restartFeed() {
    if (!list) return;
    resetList();
    feed.session = 0;
    feed.attempt = 0;
    updateCounts();
    if ('WebSocket' in window) connect();
  }

  function onFrame(data) {
    let msg;
    try { msg = JSON.parse(data); } catch (e) { console.warn('ignoring a non-JSON frame'); return; }
    const frames = Array.isArray(msg) ? msg : [msg];
    const isObj = (v) => v && typeof v === 'object';
    for (const f of frames) {
      if (!isObj(f)) continue;
      switch (f.type) {
        case 'interest': case 'message': addEvent(f); break;
        case 'booking': case 'notice':
          addActivity(f);
          if (f.type === 'booking' && isObj(f.booking) && !feed.history) {
            document.dispatchEvent(new CustomEvent('voluntree:booking', { detail: f.booking })); // manage.js
          }
          break;
        case 'volunteer':
          if (isObj(f.volunteer)) document.dispatchEvent(new CustomEvent('voluntree:volunteer', { detail: f.volunteer })); // manage.js
          break;
        case 'post':
          if (isObj(f.post)) document.dispatchEvent(new CustomEvent('voluntree:post', { detail: f.post })); // manage.js
          break;
        case 'ready': onReady(f); break;
        case 'gap': onGap(); return;
      }
      // Every event of the log, shown or not, is one the next connection resumes after.
      if (typeof f.id === 'string' && parseId(f.id) && cmpId(f.id, feed.lastId) > 0) feed.lastId = f.id;
    }
  }

  function onReady(f) {
    mark('voluntree:feed-live');
    feed.attempt = 0;
    if (typeof f.last_id === 'string' && f.last_id && cmpId(f.last_id, feed.lastId) > 0) feed.lastId = f.last_id;
    feed.history = false;
    feed.ready = true;
    list.setAttribute('aria-busy', 'false');
    setConn('live');
    updateCounts();
  }

  function onGap() {
    // A tail replay cannot miss anything; once live, a gap means the server's Pub/Sub
    // connection dropped and events older than its log were lost for this list.
    if (!feed.usedSince && !feed.ready) {
      console.warn('gap frame during a tail replay: ignored');
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
      if (ev.type === 'interest') feed.session++;
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

  // addActivity shows a booking (a slot filling, a waitlist, a cancellation) or a notice for
  // the admins (a question the bot could not answer, a person asking for a human), newest first.
  const seenActivity = new Set();
  function addActivity(ev) {
    if (typeof ev.id !== 'string' || !ev.id || seenActivity.has(ev.id)) return;
    seenActivity.add(ev.id);
    if (cmpId(ev.id, feed.lastId) > 0) feed.lastId = ev.id;
    const box = $('#activity');
    if (!box) return;
    const li = el('li', 'activity-item');
    li.dataset.eventId = ev.id;
    if (ev.type === 'booking' && ev.booking) {
      const b = ev.booking;
      li.dataset.kind = 'booking';
      const who = String(b.name || 'A volunteer');
      const verb = { booked: 'booked', waitlisted: 'joined the waitlist of', cancelled: 'cancelled', full: 'found full' }[b.outcome] || String(b.outcome);
      li.textContent = `${who} ${verb} ${b.slot_label ? String(b.slot_label) : 'slot ' + b.slot_id}: ${Number(b.booked)} of ${Number(b.required)} filled` +
        (b.waiting ? `, ${Number(b.waiting)} waiting` : '') + (b.held ? `, ${Number(b.held)} offered` : '');
    } else if (ev.type === 'notice' && ev.notice) {
      li.dataset.kind = 'notice';
      li.textContent = `Needs you: ${String(ev.notice.text || '')} `;
      const conv = String(ev.notice.conversation_id || '');
      if (conv) {
        const b = el('button', 'link-button', 'open the conversation');
        b.type = 'button';
        b.addEventListener('click', () => openConversation(conv));
        li.append(b);
      }
    } else return;
    let ref = box.firstElementChild;
    while (ref && cmpId(ref.dataset.eventId, ev.id) > 0) ref = ref.nextElementSibling;
    box.insertBefore(li, ref);
    while (box.childElementCount > 50) box.lastElementChild.remove();
    $('#activity-section').hidden = false;
  }

  // The conversation view: what the person said and where they are, an answer from the team
  // (sent with Messenger's HUMAN_AGENT tag) and the hand-back to the bot.
  let convOpen = '';
  async function openConversation(id) {
    convOpen = id;
    const box = $('#conv');
    box.hidden = false;
    $('#conv-status').textContent = 'loading…';
    try {
      const { data: c } = await api('GET', '/conversations/' + encodeURIComponent(id));
      if (convOpen !== id) return;
      const parts = [String(c.name || c.id), String(c.channel), 'stage ' + String(c.stage)];
      if (c.slot_id) parts.push('slot ' + String(c.slot_id));
      if (c.email) parts.push(String(c.email) + (c.email_verified ? ' (verified)' : ''));
      if (c.handoff) parts.push('waiting for the team');
      if (c.delivery && c.delivery.error) parts.push('cannot be reached: ' + String(c.delivery.error));
      $('#conv-summary').textContent = parts.join(' · ');
      const log = $('#conv-history');
      log.replaceChildren(...(Array.isArray(c.history) ? c.history : []).map((m) => {
        const li = el('li', '', String(m.text || ''));
        li.dataset.from = String(m.from || '');
        return li;
      }));
      $('#conv-release').hidden = !c.handoff;
      $('#conv-status').textContent = '';
      $('#conv-text').focus();
    } catch (err) {
      $('#conv-status').textContent = 'Could not load the conversation: ' + err.message;
    }
  }
  const convForm = $('#conv-form');
  if (convForm) {
    convForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = $('#conv-text').value.trim();
      if (!text || !convOpen) return;
      try {
        await api('POST', '/conversations/' + encodeURIComponent(convOpen) + '/messages', { text });
        $('#conv-text').value = '';
        $('#conv-status').textContent = 'Sent.';
      } catch (err) { $('#conv-status').textContent = 'Not sent: ' + err.message; }
    });
    $('#conv-release').addEventListener('click', async () => {
      try {
        await api('POST', '/conversations/' + encodeURIComponent(convOpen) + '/release');
        $('#conv-status').textContent = 'The bot answers again.';
        $('#conv-release').hidden = true;
      } catch (err) { $('#conv-status').textContent = err.message; }
    });
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
    const intent = ev.type === 'message' ? String(ev.intent || it.intent || '') : 'interested';
    li.dataset.intent = intent;
    if (feed.intent) {
      // An answer to the bot within a conversation is a reply, whatever its intent.
      const label = it.turn ? 'reply' : (INTENT_LABELS[intent] || intent);
      head.append(el('span', 'intent intent-' + (it.turn ? 'reply' : intent.replace(/[^a-z]/gi, '')), label));
    }
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
    empty.hidden = shown > 0 || feed.state === 'signed-out';
    if (!feed.ready) empty.textContent = 'Loading recent signups…';
    else if (feed.intent) empty.textContent = 'No ' + ($('#intent-filter').selectedOptions[0] || { textContent: 'such messages' }).textContent.toLowerCase() +
      (feed.post ? ' for post “' + feed.post + '”' : '') + ' yet. They appear here as they arrive.';
    else if (feed.post) empty.textContent = 'No signups for post “' + feed.post + '” yet. They appear here the moment someone comments or messages that they want to help.';
    else empty.textContent = 'No signups yet. They appear here the moment someone comments or messages that they want to help.';
    const note = $('#list-note');
    note.hidden = !feed.trimmed;
    note.textContent = 'Only the latest ' + MAX_ITEMS + ' signups are kept on this page.';
  }

  function refreshTimes() {
    const now = Date.now();
    for (const t of document.querySelectorAll('#signups time[data-ts], #outbox-list time[data-ts]')) {
      const txt = relTime(Number(t.dataset.ts), now);
      if (t.textContent !== txt) t.textContent = txt;
    }
  }

  // ---------------------------------------------------------------- post filter

  function renderFilter() {
    $('#post-filter').value = feed.post;
    $('#intent-filter').value = feed.intent;
    $('#filter-value').textContent = feed.post;
    $('#filter-info').hidden = !feed.post;
  }

  const INTENT_FILTERS = ['', 'question', 'donate', 'decline', 'thanks', 'other', 'all'];

  function setFilter(value, intentValue) {
    const post = String(value || '').trim();
    const intent = intentValue === undefined ? feed.intent : (INTENT_FILTERS.includes(intentValue) ? intentValue : '');
    if (post === feed.post && intent === feed.intent) { renderFilter(); return; }
    feed.post = post;
    feed.intent = intent;
    try {
      const u = new URL(location.href);
      if (post) u.searchParams.set('post', post); else u.searchParams.delete('post');
      if (intent) u.searchParams.set('intent', intent); else u.searchParams.delete('intent');
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
    try {
      const q = new URLSearchParams(location.search);
      feed.post = (q.get('post') || '').trim();
      feed.intent = INTENT_FILTERS.includes(q.get('intent') || '') ? (q.get('intent') || '') : '';
    } catch (e) { feed.post = ''; feed.intent = ''; }
    renderFilter();
    $('#filter-form').addEventListener('submit', (e) => { e.preventDefault(); setFilter($('#post-filter').value, $('#intent-filter').value); });
    $('#post-filter').addEventListener('change', (e) => setFilter(e.target.value));
    $('#intent-filter').addEventListener('change', (e) => setFilter(feed.post, e.target.value));
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
    connect(); // signed out until the Organization card has a token (restartFeed)
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
    if (!org.token) {
      setDemoStatus('Sent. Signups show in the live list of the organization that owns the page: enter the demo '
        + 'organization\'s admin token in the Organization card to watch them arrive.', 'ok');
      return;
    }
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
    if (typeof cfg.chat_url === 'string' && cfg.chat_url.startsWith('/chat/')) {
      $('#demo-chat-link').href = cfg.chat_url;
      $('#demo-chat').hidden = false;
    }
    $('#demo').hidden = false;
    $('#layout').classList.add('has-demo');
  }

  // ---------------------------------------------------------------- organization (admin API)
  // The admin API token is kept in sessionStorage (this tab only), taken from `#token=vt_…` on
  // load (then removed from the address bar) or from the form. It is only ever sent in the
  // Authorization header: never written into the DOM.

  const TOKEN_KEY = 'voluntree.adminToken';
  // org.token is SESSION when this browser is signed in (the session cookie, sent by the
  // browser itself; changes carry the session's CSRF token from GET /me).
  const SESSION = 'session';
  const OUTBOX_POLL_MS = 400;   // after a code was sent: the mail worker delivers within ~1 s
  const OUTBOX_POLLS = 12;      // then give up (the refresh button stays)
  const EXPIRY_TIMER_MAX = 60 * 60 * 1000;

  const org = {
    token: '',
    csrf: '',          // the session's CSRF token (session mode)
    githubSignIn: false, // GET /api/v1/signin
    facebookSignIn: false,
    gen: 0,            // bumped when the token changes: answers for an older token are dropped
    me: null,          // GET /me
    email: null,       // GET /me/email
    pages: null,       // GET /pages
    outbox: [],        // GET /outbox items, newest first
    outboxLoaded: false,
    emailDirty: false, // the admin typed an address: keep it
    sending: false,
    verifying: false,
    connecting: false,
    pollGen: 0,
    expiryTimer: 0,
  };

  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status; // 0: no answer; -1: the token changed meanwhile
      this.field = field || '';
    }
  }
  // Errors the caller has nothing to show for: a stale answer, or a 401 (the token form shows it).
  const ignorable = (err) => err instanceof ApiError && (err.status === -1 || err.status === 401);

  function sentence(msg) {
    const s = String(msg || '').trim();
    if (!s) return '';
    const t = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?…)]$/.test(t) ? t : t + '.';
  }

  function readToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives in memory until a reload */ }
  }
  const validToken = (t) => /^vt_[\x21-\x7e]+$/.test(t);

  async function api(method, path, body) {
    const token = org.token, gen = org.gen;
    if (!token) throw new ApiError(-1, 'no admin API token');
    const headers = { Accept: 'application/json' };
    if (token === SESSION) {
      if (method !== 'GET' && org.csrf) headers['X-CSRF-Token'] = org.csrf;
    } else {
      headers.Authorization = 'Bearer ' + token;
    }
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body instanceof Blob || body instanceof ArrayBuffer) { // a model chunk: raw bytes
      headers['Content-Type'] = 'application/octet-stream';
      init.body = body;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path.startsWith('/auth/') ? path : '/api/v1' + path, init);
    } catch (err) {
      throw new ApiError(0, 'the server could not be reached');
    }
    let data = null;
    try { data = await r.json(); } catch (err) { data = null; }
    if (gen !== org.gen) throw new ApiError(-1, 'the token changed');
    if (!r.ok) {
      const msg = data && typeof data.error === 'string' && data.error ? data.error : 'the server answered ' + r.status;
      const field = data && typeof data.field === 'string' ? data.field : '';
      const err = new ApiError(r.status, msg, field);
      if (r.status === 401) {
        forgetToken(token === SESSION ? sentence(msg) + ' Sign in with a new link (bin/voluntree admin login-link -org demo), or use a token.'
          : 'The server refused this admin API token (' + msg + '): enter another one.');
      }
      throw err;
    }
    return { status: r.status, data: (data && typeof data === 'object') ? data : {} };
  }

  // rawGet fetches an admin API path as is (a file to download), with this page's credentials.
  function rawGet(path) {
    const headers = {};
    if (org.token && org.token !== SESSION) headers.Authorization = 'Bearer ' + org.token;
    return fetch('/api/v1' + path, { headers, cache: 'no-store', credentials: 'same-origin' });
  }

  function features() {
    const f = (org.me && org.me.features) || {};
    return { facebook: f.facebook_login === true, email: f.email === true, outbox: f.outbox === true };
  }

  function parseTime(s) {
    const ms = Date.parse(s);
    return Number.isNaN(ms) ? null : ms;
  }
  function timeEl(stamp, text) {
    const t = el('time', null, text);
    t.dateTime = String(stamp);
    const ms = parseTime(stamp);
    if (ms !== null) t.title = new Date(ms).toLocaleString();
    return t;
  }
  function clock(stamp) {
    const ms = parseTime(stamp);
    return ms === null ? '?' : new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  }
  function day(stamp) {
    const ms = parseTime(stamp);
    return ms === null ? '?' : new Date(ms).toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
  }

  function setStatus(sel, text, kind) {
    const s = $(sel);
    s.textContent = text;
    s.className = 'org-status' + (kind ? ' ' + kind : '');
  }
  function fieldError(input, errEl, text) {
    errEl.textContent = text;
    if (input) input.setAttribute('aria-invalid', 'true');
  }
  function clearFieldError(input, errEl) {
    errEl.textContent = '';
    if (input) input.removeAttribute('aria-invalid');
  }

  // ---- token

  function resetOrgData() {
    org.gen++;
    org.me = org.email = org.pages = null;
    org.outbox = [];
    org.outboxLoaded = false;
    org.emailDirty = false;
    org.connecting = false;
    org.pollGen++;
    clearTimeout(org.expiryTimer);
    $('#email-input').value = '';
    $('#code-input').value = '';
    $('#outbox-list').replaceChildren();
    for (const [input, err] of [['#email-input', '#email-error'], ['#code-input', '#code-error'], [null, '#connect-error']]) {
      clearFieldError(input && $(input), $(err));
    }
    setStatus('#email-status', '', '');
    setStatus('#outbox-status', '', '');
  }

  // useToken signs this tab in with a token (or SESSION); me is GET /me's answer when the
  // caller has it already.
  function useToken(token, me) {
    resetOrgData();
    org.token = token;
    if (token === SESSION && me) org.csrf = typeof me.csrf_token === 'string' ? me.csrf_token : '';
    if (token !== SESSION) storeToken(token);
    clearFieldError($('#token-input'), $('#token-error'));
    renderOrg();
    loadOrg(me);
    restartFeed();
  }

  // announceOrg tells the management views (manage.js) who is signed in (null: nobody), and
  // hands them the API caller of this page.
  function announceOrg(me) {
    window.voluntreeAPI = me ? api : null;
    window.voluntreeFetch = me ? rawGet : null;
    document.dispatchEvent(new CustomEvent('voluntree:org', { detail: me }));
  }

  function forgetToken(message) {
    announceOrg(null);
    resetOrgData();
    if (org.token !== SESSION) storeToken('');
    org.token = '';
    org.csrf = '';
    renderOrg();
    setStatus('#org-status', '', '');
    $('#token-error').textContent = message || '';
    restartFeed();
  }

  function submitToken(e) {
    e.preventDefault();
    const input = $('#token-input'), errEl = $('#token-error');
    const token = input.value.trim();
    clearFieldError(input, errEl);
    if (!token || !validToken(token)) {
      fieldError(input, errEl, token ? 'An admin API token starts with vt_ and has no spaces.'
        : 'Paste the token printed by bin/voluntree admin create-token.');
      input.focus();
      return;
    }
    input.value = '';
    useToken(token);
  }

  // ---- loading

  async function loadOrg(known) {
    $('#org-retry').hidden = true;
    setStatus('#org-status', 'Loading the organization…', '');
    try {
      org.me = known || (await api('GET', '/me')).data;
      if (org.token === SESSION) org.csrf = typeof org.me.csrf_token === 'string' ? org.me.csrf_token : '';
    } catch (err) {
      if (ignorable(err)) return;
      setStatus('#org-status', 'Could not load the organization: ' + sentence(err.message), 'error');
      $('#org-retry').hidden = false;
      return;
    }
    setStatus('#org-status', '', '');
    renderOrg();
    announceOrg(org.me);
    const f = features();
    const jobs = [loadPages()];
    if (f.email) jobs.push(loadEmail());
    if (f.outbox) jobs.push(loadOutbox());
    await Promise.all(jobs);
    mark('voluntree:org-loaded');
  }

  async function loadEmail() {
    try {
      org.email = (await api('GET', '/me/email')).data;
    } catch (err) {
      if (ignorable(err)) return;
      setStatus('#email-status', 'Could not read the email state: ' + sentence(err.message), 'error');
      return;
    }
    renderEmail();
    renderPages();
  }

  async function loadPages() {
    try {
      org.pages = (await api('GET', '/pages?limit=100')).data;
    } catch (err) {
      if (ignorable(err)) return;
      $('#pages-empty').textContent = 'Could not list the pages: ' + sentence(err.message);
      $('#pages-empty').hidden = false;
      return;
    }
    renderPages();
  }

  // loadOutbox returns the items, or null when they could not be read.
  async function loadOutbox() {
    try {
      const { data } = await api('GET', '/outbox');
      org.outbox = Array.isArray(data.items) ? data.items.filter((m) => m && typeof m === 'object') : [];
      org.outboxLoaded = true;
    } catch (err) {
      if (ignorable(err)) return null;
      setStatus('#outbox-status', 'Could not read the outbox: ' + sentence(err.message), 'error');
      return null;
    }
    renderOutbox();
    return org.outbox;
  }

  // pollOutbox reloads the outbox until an email not in `before` shows up, a few times at most.
  async function pollOutbox(before) {
    const my = ++org.pollGen;
    setStatus('#outbox-status', 'Waiting for the email…', '');
    for (let i = 0; i < OUTBOX_POLLS; i++) {
      await new Promise((resolve) => setTimeout(resolve, OUTBOX_POLL_MS));
      if (my !== org.pollGen) return;
      const items = await loadOutbox();
      if (my !== org.pollGen || !items) return;
      if (items.some((m) => !before.has(String(m.id)))) {
        setStatus('#outbox-status', '', '');
        return;
      }
    }
    setStatus('#outbox-status', 'The email has not arrived yet: refresh in a moment.', '');
  }

  // ---- rendering

  function renderOrg() {
    const ready = !!org.token && !!org.me;
    $('#token-form').hidden = !!org.token;
    renderSignIn();
    $('#org-who').hidden = !ready;
    const session = org.token === SESSION;
    const who = org.me && org.me.user && typeof org.me.user.name === 'string' ? org.me.user.name : '';
    $('#org-via').textContent = session ? 'signed in' + (who ? ' as ' + who : '') + (org.me && org.me.role ? ' (' + org.me.role + ')' : '')
      : 'admin token in this tab';
    $('#org-forget').textContent = session ? 'sign out' : 'forget token';
    $('#org-body').hidden = !ready;
    if (!ready) return;
    const o = (org.me.org && typeof org.me.org === 'object') ? org.me.org : {};
    const name = $('#org-name');
    name.textContent = String(o.name || o.id || 'Organization');
    name.title = o.id ? 'organization id ' + o.id : '';
    const f = features();
    $('#org-email').hidden = !f.email;
    $('#org-outbox').hidden = !f.outbox;
    renderEmail();
    renderPages();
    renderOutbox();
  }

  function emailState() {
    const v = org.email;
    const o = (org.me && org.me.org) || {};
    return {
      address: String((v ? v.email : o.email) || ''),
      verifiedAt: v ? v.verified_at : o.email_verified_at,
      pending: v && v.pending && typeof v.pending === 'object' ? v.pending : null,
    };
  }
  const isVerified = () => { const s = emailState(); return !!(s.verifiedAt && s.address); };

  function renderEmail() {
    const { address, verifiedAt, pending: p } = emailState();
    const box = $('#email-state');
    box.replaceChildren();
    if (verifiedAt && address) {
      const line = el('p', 'org-line ok', '✓ ' + address + ' verified on ');
      line.append(timeEl(verifiedAt, day(verifiedAt)), '.');
      box.append(line);
    } else if (!p) {
      box.append(el('p', 'org-line muted', 'No verified address yet: send a code to the organization\'s email. '
        + 'Connecting a Facebook page needs it.'));
    }
    clearTimeout(org.expiryTimer);
    if (p) {
      const to = String(p.email || '');
      const left = Number(p.attempts_left);
      let line;
      if (p.locked) {
        line = el('p', 'org-line warn', 'Too many wrong codes: verification is locked until ' + clock(p.expires_at)
          + ', then send a new code.');
      } else if (p.expired) {
        line = el('p', 'org-line warn', 'The code sent to ' + to + ' has expired: send a new one.');
      } else {
        line = el('p', 'org-line', 'Code sent to ' + to + ', expires ' + clock(p.expires_at) + ', '
          + left + (left === 1 ? ' attempt' : ' attempts') + ' left.');
      }
      box.append(line);
      // Show the change when the code expires (or the lock ends) without a reload.
      const ms = parseTime(p.expires_at);
      const wait = ms === null ? -1 : ms - Date.now() + 1000;
      if (wait > 0 && wait < EXPIRY_TIMER_MAX) org.expiryTimer = setTimeout(loadEmail, wait);
    }
    const input = $('#email-input');
    if (!org.emailDirty && document.activeElement !== input) input.value = String((p && p.email) || address || '');
    $('#email-send').textContent = p && !p.expired ? 'Send a new code' : 'Send code';
    const canVerify = !!p && !p.locked && !p.expired;
    $('#code-form').hidden = !canVerify;
  }

  function renderPages() {
    if (!org.me) return;
    const f = features();
    const pg = org.pages;
    const items = pg && Array.isArray(pg.items) ? pg.items.filter((p) => p && typeof p === 'object') : [];
    $('#pages-list').replaceChildren(...items.map(renderPage));
    const empty = $('#pages-empty');
    empty.hidden = items.length > 0;
    if (!pg) empty.textContent = 'Loading the pages…';
    else empty.textContent = 'No page connected yet.';
    const more = pg && Number(pg.total) > items.length ? Number(pg.total) - items.length : 0;
    $('#pages-more').hidden = !more;
    $('#pages-more').textContent = 'and ' + more + ' more.';

    $('#connect-box').hidden = !f.facebook;
    $('#fb-unconfigured').hidden = f.facebook;
    const verified = isVerified();
    const btn = $('#connect-page');
    btn.disabled = !verified || org.connecting;
    let note;
    if (org.connecting) note = 'Opening Facebook…';
    else if (verified) note = 'Facebook asks which of your pages to share with Voluntree; each one shared is connected.';
    else if (f.email) note = 'Verify the organization\'s email first: connecting a page needs it.';
    else note = 'Connecting a page needs a verified email, and this server cannot send email.';
    $('#connect-note').textContent = note;
  }

  function renderPage(p) {
    const li = el('li');
    li.dataset.pageId = String(p.id || '');
    li.append(el('span', 'page-name', String(p.name || 'Unnamed page')));
    const state = { connected: 'connected', expiring: 'token expiring', expired: 'token expired', disconnected: 'disconnected' }[p.status];
    if (state) {
      const badge = el('span', 'page-state page-' + String(p.status), state);
      li.dataset.status = String(p.status);
      li.append(' ', badge);
    }
    if (p.status === 'disconnected') {
      li.append(el('p', 'form-error small', 'Facebook refused this page\'s token' + (p.error ? ' (' + String(p.error) + ')' : '') +
        ': its messages wait. Connect the page again to send them.'));
    } else if (p.status === 'expired') {
      li.append(el('p', 'form-error small', 'Its token has expired: connect the page again.'));
    } else if (p.status === 'expiring') {
      li.append(el('p', 'muted small', 'Its token expires soon: connect the page again to renew it.'));
    }
    const meta = el('span', 'page-meta');
    meta.append('id ', el('code', null, String(p.id || '')));
    if (p.connected_at && parseTime(p.connected_at) !== null) meta.append(' · connected ', timeEl(p.connected_at, day(p.connected_at)));
    if (p.token_expires_at && parseTime(p.token_expires_at) !== null) {
      meta.append(' · token expires ', timeEl(p.token_expires_at, day(p.token_expires_at)));
    }
    li.append(meta);
    return li;
  }

  function renderOutbox() {
    if (!features().outbox) return;
    const list = $('#outbox-list');
    const items = org.outbox;
    const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
    const want = new Set(items.map((m) => String(m.id)));
    for (const [id, li] of existing) if (!want.has(id)) li.remove();
    let ref = list.firstElementChild;
    items.forEach((m, i) => {
      const id = String(m.id);
      let li = existing.get(id);
      if (!li) {
        li = renderMail(m);
        if (i === 0) { // a new newest email: open it (it holds the code), fold the older ones
          for (const d of list.querySelectorAll('details[open]')) d.open = false;
          li.querySelector('details').open = true;
        }
      }
      if (li !== ref) list.insertBefore(li, ref);
      ref = li.nextElementSibling;
    });
    const empty = $('#outbox-empty');
    empty.hidden = items.length > 0;
    empty.textContent = org.outboxLoaded ? 'No email yet.' : 'Loading the outbox…';
  }

  function renderMail(m) {
    const li = el('li', 'mail');
    li.dataset.id = String(m.id);
    const d = el('details');
    const summary = el('summary');
    summary.append(el('span', 'mail-subject', String(m.subject || '(no subject)')));
    const meta = el('span', 'mail-meta', 'to ' + String(m.to || '?'));
    const ts = parseTime(m.created_at);
    if (ts !== null) {
      const t = timeEl(m.created_at, relTime(ts, Date.now()));
      t.dataset.ts = String(ts);
      meta.append(' · ', t);
    }
    summary.append(meta);
    d.append(summary, el('pre', 'mail-text', String(m.text || '')));
    li.append(d);
    return li;
  }

  // ---- actions

  async function sendCode(e) {
    e.preventDefault();
    if (org.sending) return;
    const input = $('#email-input'), errEl = $('#email-error');
    const email = input.value.trim();
    clearFieldError(input, errEl);
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
      fieldError(input, errEl, email ? 'Enter one address like team@example.org.' : 'Enter the organization\'s email address.');
      input.focus();
      return;
    }
    org.sending = true;
    $('#email-send').disabled = true;
    setStatus('#email-status', 'Sending a code to ' + email + '…', '');
    const before = new Set(org.outbox.map((m) => String(m.id)));
    try {
      const { status, data } = await api('POST', '/me/email', { email });
      org.email = data;
      org.emailDirty = false;
      clearFieldError($('#code-input'), $('#code-error'));
      renderEmail();
      renderPages();
      if (status === 202) {
        const outbox = features().outbox;
        setStatus('#email-status', outbox ? 'Sent: the email arrives in the outbox below in a moment.'
          : 'Sent: check that inbox.', 'ok');
        $('#code-input').value = '';
        if (!$('#code-form').hidden) $('#code-input').focus();
        if (outbox) pollOutbox(before);
      } else {
        setStatus('#email-status', email + ' is verified already: no code was sent.', 'ok');
      }
    } catch (err) {
      if (ignorable(err)) return;
      setStatus('#email-status', '', '');
      fieldError(err.field === 'email' ? input : null, errEl, sentence(err.message));
      if (err.status === 429) loadEmail(); // a lock or a pending code the page did not know of
    } finally {
      org.sending = false;
      $('#email-send').disabled = false;
    }
  }

  async function verifyCode(e) {
    e.preventDefault();
    if (org.verifying) return;
    const input = $('#code-input'), errEl = $('#code-error');
    const code = input.value.replace(/\s+/g, '');
    clearFieldError(input, errEl);
    clearFieldError(null, $('#email-error'));
    if (!/^\d{6}$/.test(code)) {
      fieldError(input, errEl, 'Enter the 6 digits from the email.');
      input.focus();
      return;
    }
    org.verifying = true;
    $('#code-verify').disabled = true;
    try {
      const { data } = await api('POST', '/me/email/verify', { code });
      org.email = data;
      if (org.me && org.me.org) {
        org.me.org.email = data.email;
        org.me.org.email_verified_at = data.verified_at;
      }
      input.value = '';
      renderEmail();
      renderPages();
      setStatus('#email-status', 'Email verified.' + (features().facebook ? ' You can connect a Facebook page now.' : ''), 'ok');
    } catch (err) {
      if (ignorable(err)) return;
      setStatus('#email-status', '', '');
      if (err.status === 400) {
        fieldError(err.field === 'code' ? input : null, errEl, sentence(err.message));
        input.select();
      } else {
        // Locked (429) or no code pending (409): the remedy is a new code, next to that form.
        fieldError(null, $('#email-error'), sentence(err.message));
      }
      if (err.status !== 0) loadEmail(); // attempts left, lock or expiry changed
    } finally {
      org.verifying = false;
      $('#code-verify').disabled = false;
    }
  }

  async function connectPage() {
    if (org.connecting) return;
    const errEl = $('#connect-error');
    clearFieldError(null, errEl);
    org.connecting = true;
    renderPages();
    let leaving = false;
    try {
      const { data } = await api('POST', '/pages/connect');
      const url = String(data.url || '');
      if (!/^https?:\/\//i.test(url)) throw new ApiError(0, 'the server gave no Facebook address');
      leaving = true;
      window.location.assign(url);
    } catch (err) {
      if (ignorable(err)) return;
      errEl.textContent = sentence(err.message);
      if (err.status === 409) loadEmail();
    } finally {
      if (!leaving) {
        org.connecting = false;
        renderPages();
      }
    }
  }

  // ---- the URL: a token in the fragment, the outcome of a Facebook login in the query

  function takeURLState() {
    let u;
    try { u = new URL(location.href); } catch (e) { return { token: '', outcome: null }; }
    let token = '', changed = false, outcome = null;
    const hash = u.hash.replace(/^#/, '');
    if (hash) {
      const hp = new URLSearchParams(hash);
      if (hp.has('token')) {
        token = (hp.get('token') || '').trim();
        hp.delete('token');
        const rest = hp.toString();
        u.hash = rest ? '#' + rest : '';
        changed = true;
      }
    }
    const q = u.searchParams;
    if (q.get('signin') === 'error') {
      outcome = { kind: 'signin', message: (q.get('message') || '').trim() };
      for (const k of ['signin', 'message']) q.delete(k);
      changed = true;
    }
    if (q.has('facebook')) {
      outcome = { kind: q.get('facebook') || '', pages: Number(q.get('pages')), message: (q.get('message') || '').trim() };
      for (const k of ['facebook', 'pages', 'message']) q.delete(k);
      changed = true;
    }
    if (changed) {
      try { history.replaceState(history.state, '', u.toString()); } catch (e) { /* sandboxed: harmless */ }
    }
    return { token, outcome };
  }

  function showFacebookOutcome(o) {
    if (!o) return;
    if (o.kind === 'signin') {
      showNotice(o.message || 'The sign-in failed: start again.', 'bad');
      return;
    }
    if (o.kind === 'connected') {
      const n = Number.isFinite(o.pages) ? o.pages : 0;
      const text = o.message || (n > 0 ? 'Connected ' + n + (n === 1 ? ' Facebook page.' : ' Facebook pages.')
        : 'No Facebook page was connected.');
      showNotice(text, n > 0 ? 'ok' : '');
    } else {
      showNotice(o.message || 'The Facebook login failed: start again from the Organization card.', 'bad');
    }
  }

  function initOrg() {
    const { token, outcome } = takeURLState();
    showFacebookOutcome(outcome);
    $('#token-form').addEventListener('submit', submitToken);
    $('#org-forget').addEventListener('click', async () => {
      if (org.token === SESSION) {
        try { await api('POST', '/auth/logout'); } catch (err) { /* signed out either way */ }
        forgetToken('');
        setStatus('#org-status', 'Signed out.', '');
      } else {
        forgetToken('');
        setStatus('#org-status', 'Token forgotten in this tab.', '');
      }
      $('#token-input').focus();
    });
    $('#org-retry').addEventListener('click', () => loadOrg());
    $('#email-form').addEventListener('submit', sendCode);
    $('#email-input').addEventListener('input', () => { org.emailDirty = true; });
    $('#code-form').addEventListener('submit', verifyCode);
    $('#code-input').addEventListener('input', (e) => {
      const digits = e.target.value.replace(/\D+/g, '').slice(0, 6);
      if (digits !== e.target.value) e.target.value = digits;
    });
    $('#connect-page').addEventListener('click', connectPage);
    $('#outbox-refresh').addEventListener('click', () => { org.pollGen++; setStatus('#outbox-status', '', ''); loadOutbox(); });
    // Back from Facebook through the back/forward cache: the page is live again.
    window.addEventListener('pageshow', (e) => {
      if (e.persisted && org.connecting) { org.connecting = false; renderPages(); }
    });

    const stored = readToken();
    if (token && !validToken(token)) {
      renderOrg();
      $('#token-error').textContent = 'The token in the address is not an admin API token (they start with vt_).';
    } else if (token || stored) {
      useToken(token || stored);
    } else {
      renderOrg();
      trySession();
    }
    signinOptions();
  }

  // renderSignIn shows the sign-in buttons this server offers, while signed out.
  function renderSignIn() {
    $('#signin-github').hidden = !org.githubSignIn;
    $('#signin-facebook').hidden = !org.facebookSignIn;
    $('#signin-buttons').hidden = !!org.token || !(org.githubSignIn || org.facebookSignIn);
  }

  // signinOptions shows the sign-in buttons this server offers.
  async function signinOptions() {
    try {
      const r = await fetch('/api/v1/signin', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      const d = r.ok ? await r.json() : {};
      org.githubSignIn = d.github === true;
      org.facebookSignIn = d.facebook === true;
      renderSignIn();
    } catch (err) { /* no options: the token form stays */ }
  }

  // trySession uses this browser's session when it is signed in (a sign-in link was opened).
  async function trySession() {
    let r;
    try {
      r = await fetch('/api/v1/me', { headers: { Accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' });
    } catch (err) { return; }
    if (!r.ok || org.token) return; // not signed in, or a token was entered meanwhile
    let me = null;
    try { me = await r.json(); } catch (err) { me = null; }
    if (org.token) return;
    // The answer carries the session's CSRF token: the feed's ticket (a POST) needs it at once.
    useToken(SESSION, me && typeof me === 'object' ? me : null);
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
    safely('org', initOrg);
    safely('demo', () => { initDemo().catch((err) => console.error('demo:', err)); });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
