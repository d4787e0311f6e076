// Voluntree dashboard, management views: signups (create, edit, slots with their fill, the
// volunteers and their CSV) and people (members and roles, invitations, API tokens). It runs
// once app.js announces who is signed in (the `voluntree:org` event) and calls the admin API
// through app.js's caller (window.voluntreeAPI). Plain JS; server data goes through
// textContent and attributes only.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const RANK = { viewer: 1, admin: 2, owner: 3 };

  const st = {
    me: null,
    role: '',
    signups: [],
    editing: null,   // the signup being edited; null with the form open: a new one
    selected: '',    // the signup whose volunteers are shown
    posts: null,     // GET /posts items, kept up to date by the feed's post events
    gen: 0,          // bumped at every sign-in change: stale answers are dropped
    signupsSeq: 0,   // GET /signups requests made
    postsLoading: null, // the GET /posts on its way (a promise), or null
    postsDirty: false,  // something changed since that one was sent: load again after it
  };

  const can = (role) => (RANK[st.role] || 0) >= RANK[role];
  const api = (method, path, body) => {
    const f = window.voluntreeAPI;
    if (!f) return Promise.reject(new Error('signed out'));
    return f(method, path, body);
  };
  const message = (err) => (err && err.message ? String(err.message) : 'something went wrong');

  function status(text, kind) {
    const s = $('#manage-status');
    s.textContent = text || '';
    s.className = 'org-status' + (kind ? ' ' + kind : '');
  }

  // ---------------------------------------------------------------- tabs

  const TABS = ['signups', 'posts', 'stats', 'people', 'models'];

  function selectTab(name, focus) {
    for (const t of TABS) {
      const tab = $('#tab-' + t), on = t === name;
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.tabIndex = on ? 0 : -1;
      $('#panel-' + t).hidden = !on;
      if (on && focus) tab.focus();
    }
    if (name === 'people') loadPeople();
    if (name === 'stats') loadStats();
    if (name === 'posts') loadPosts();
    if (name === 'models') loadModels();
  }

  function initTabs() {
    TABS.forEach((n) => {
      const tab = $('#tab-' + n);
      tab.addEventListener('click', () => selectTab(n, false));
      tab.addEventListener('keydown', (e) => {
        if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
        e.preventDefault();
        const shown = TABS.filter((t) => !$('#tab-' + t).hidden); // the Model tab is the operator's
        const i = shown.indexOf(n);
        selectTab(shown[(i + (e.key === 'ArrowRight' ? 1 : shown.length - 1)) % shown.length], true);
      });
    });
  }

  // ---------------------------------------------------------------- signups

  async function loadSignups() {
    const gen = st.gen, seq = ++st.signupsSeq; // an older answer never replaces a newer one
    try {
      const { data } = await api('GET', '/signups?limit=200');
      if (gen !== st.gen || seq !== st.signupsSeq) return;
      st.signups = Array.isArray(data.items) ? data.items : [];
      const total = Number(data.total) || st.signups.length;
      $('#signups-count').textContent = total === 1 ? '1 signup' : total + ' signups';
      renderSignups();
      if (window.voluntreeMark) window.voluntreeMark('voluntree:signups-listed');
    } catch (err) {
      if (gen === st.gen) status('Could not load the signups: ' + message(err), 'error');
    }
  }

  // fillBar is a slot's fill: its label (a button showing the slot's volunteers, with onPick)
  // and a meter.
  function fillBar(fill, slot, onPick) {
    const wrap = el('div', 'fill');
    const req = Math.max(0, Number(fill.required) || 0), got = Math.max(0, Number(fill.filled) || 0);
    const label = (slot ? (slot.title || slot.date + ' ' + slot.start) : fill.slot_id) + ': ' + got + ' of ' + req;
    const bar = el('div', 'fill-bar');
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', String(req));
    bar.setAttribute('aria-valuenow', String(Math.min(got, req)));
    bar.setAttribute('aria-label', label);
    const span = el('span');
    span.style.width = (req > 0 ? Math.min(100, Math.round(100 * got / req)) : 0) + '%';
    bar.append(span);
    let lab = el('span', 'fill-label', label);
    if (onPick) {
      lab = el('button', 'fill-label link-button', label);
      lab.type = 'button';
      lab.title = 'Show the volunteers of this slot';
      lab.setAttribute('aria-label', label + ', show its volunteers');
      lab.addEventListener('click', onPick);
    }
    wrap.append(lab, bar);
    wrap.dataset.slot = String(fill.slot_id || '');
    return wrap;
  }

  function renderSignups() {
    const list = $('#signup-list');
    list.replaceChildren();
    if (st.signups.length === 0) {
      list.append(el('li', 'muted', can('admin') ? 'No signup yet: make the first one.' : 'No signup yet.'));
      return;
    }
    for (const su of st.signups) {
      const li = el('li', 'signup-row');
      li.dataset.signupId = String(su.id || '');
      const head = el('div', 'su-head');
      const title = el('button', 'link-button signup-title', String(su.title || su.id));
      title.type = 'button';
      title.addEventListener('click', () => showVolunteers(su));
      const meta = el('span', 'muted small', (Array.isArray(su.slots) ? su.slots.length : 0) + ' slots · ' +
        (Number(su.volunteers) || 0) + ' volunteers' + (su.disabled ? ' · disabled' : ''));
      head.append(title, meta);
      if (can('admin')) {
        const edit = el('button', 'secondary small-button', 'Edit');
        edit.type = 'button';
        edit.setAttribute('aria-label', 'Edit ' + String(su.title || su.id));
        edit.addEventListener('click', () => openForm(su));
        head.append(edit);
      }
      li.append(head);
      const slots = new Map((su.slots || []).map((s) => [s.id, s]));
      for (const f of su.fills || []) li.append(fillBar(f, slots.get(f.slot_id), () => showVolunteers(su, String(f.slot_id))));
      list.append(li);
    }
  }

  function slotRow(s) {
    const row = el('div', 'slot-row');
    const field = (type, name, label, value) => {
      const id = 'slot-' + name + '-' + Math.random().toString(36).slice(2, 8);
      const l = el('label', 'sr-only', label);
      l.htmlFor = id;
      const i = el('input');
      i.type = type; i.name = name; i.id = id; i.value = value || '';
      i.setAttribute('aria-label', label);
      row.append(l, i);
      return i;
    };
    field('date', 'date', 'Date', s && s.date);
    field('time', 'start', 'Start', s && s.start);
    field('time', 'end', 'End', s && s.end);
    field('text', 'title', 'Slot title', s && s.title);
    const req = field('number', 'required', 'Volunteers needed', s ? String(s.required) : '5');
    req.min = '1';
    if (s && s.id) row.dataset.slotId = s.id;
    const rm = el('button', 'secondary small-button', 'Remove');
    rm.type = 'button';
    rm.setAttribute('aria-label', 'Remove this slot');
    rm.addEventListener('click', () => row.remove());
    row.append(rm);
    return row;
  }

  function openForm(su) {
    st.editing = su || null;
    const f = $('#signup-form');
    $('#signup-form-title').textContent = su ? 'Edit ' + String(su.title || su.id) : 'New signup';
    $('#su-title').value = su ? String(su.title || '') : '';
    $('#su-description').value = su ? String(su.description || '') : '';
    $('#su-tz').value = su ? String(su.time_zone || '') : (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
    $('#su-facts').value = su ? String(su.facts || '') : '';
    $('#su-public').checked = !!(su && su.public_reply);
    const rows = $('#su-slots');
    rows.replaceChildren();
    for (const s of (su && su.slots) || [null]) rows.append(slotRow(s));
    $('#signup-error').textContent = '';
    f.hidden = false;
    $('#su-title').focus();
  }

  function formBody() {
    const slots = [];
    for (const row of $('#su-slots').querySelectorAll('.slot-row')) {
      const v = (n) => row.querySelector('[name="' + n + '"]').value.trim();
      const s = { date: v('date'), start: v('start'), end: v('end'), title: v('title'), required: Number(v('required')) };
      if (row.dataset.slotId) s.id = row.dataset.slotId;
      slots.push(s);
    }
    return {
      title: $('#su-title').value.trim(), description: $('#su-description').value.trim(),
      time_zone: $('#su-tz').value.trim(), facts: $('#su-facts').value.trim(),
      public_reply: $('#su-public').checked, slots,
    };
  }

  async function saveSignup(e) {
    e.preventDefault();
    const body = formBody();
    if (!body.title) {
      $('#signup-error').textContent = 'A signup needs a title.';
      $('#su-title').focus();
      return;
    }
    $('#signup-save').disabled = true;
    try {
      const editing = st.editing;
      if (editing) await api('PUT', '/signups/' + encodeURIComponent(editing.id), body);
      else await api('POST', '/signups', body);
      $('#signup-form').hidden = true;
      status(editing ? 'Signup saved.' : 'Signup created.', 'ok');
      await loadSignups();
    } catch (err) {
      $('#signup-error').textContent = message(err);
    } finally {
      $('#signup-save').disabled = false;
    }
  }

  // The volunteers of the selected signup (and slot): rows by conversation, kept up to date by
  // the feed's volunteer events (the newest view of each conversation wins).
  const vol = { rows: new Map(), slot: '', su: null, total: 0 };

  function volunteerRow(v) {
    const slots = new Map(((vol.su && vol.su.slots) || []).map((s) => [s.id, s]));
    const slot = slots.get(v.slot_id);
    const tr = el('tr');
    tr.setAttribute('role', 'row'); // explicit: a phone shows the rows as cards (CSS display drops table semantics)
    tr.dataset.conversation = String(v.conversation_id || '');
    const cells = [['Name', String(v.name || '—')], ['Channel', String(v.channel || '')],
      ['Stage', String(v.stage || '') + (v.handoff ? ' (waiting for the team)' : '')],
      ['Email', v.email ? String(v.email) + (v.email_verified ? ' ✓' : ' (unverified)') : ''],
      ['Slot', slot ? String(slot.title || slot.date + ' ' + slot.start) : '']];
    for (const [label, text] of cells) {
      const td = el('td', null, text);
      td.setAttribute('role', 'cell');
      td.dataset.label = label;
      tr.append(td);
    }
    return tr;
  }

  function renderVolunteers() {
    const body = $('#volunteers-table tbody');
    body.replaceChildren();
    const items = [...vol.rows.values()].filter((v) => !vol.slot || v.slot_id === vol.slot);
    if (items.length === 0) {
      const tr = el('tr');
      const td = el('td', 'muted', 'Nobody yet.');
      td.colSpan = 5;
      tr.append(td);
      body.append(tr);
    }
    for (const v of items) body.append(volunteerRow(v));
    const n = Math.max(items.length, vol.total);
    $('#volunteers-count').textContent = (n === 1 ? '1 volunteer' : n + ' volunteers') + (vol.slot ? ' in this slot' : '') +
      (items.length < n ? ', the first ' + items.length + ' shown (the CSV has them all)' : '');
  }

  async function showVolunteers(su, slot) {
    st.selected = String(su.id);
    vol.su = su;
    vol.slot = slot || '';
    vol.rows = new Map();
    vol.total = 0;
    const gen = st.gen;
    const sec = $('#volunteers');
    const sl = (su.slots || []).find((s) => s.id === vol.slot);
    $('#volunteers-title').textContent = 'Volunteers of ' + String(su.title || su.id) +
      (sl ? ', ' + String(sl.title || sl.date + ' ' + sl.start) : '');
    $('#volunteers-all').hidden = !vol.slot;
    $('#volunteers-csv').hidden = !can('admin');
    sec.hidden = false;
    $('#volunteers-table tbody').replaceChildren();
    $('#volunteers-count').textContent = 'loading…';
    try {
      const q = '?limit=200' + (vol.slot ? '&slot=' + encodeURIComponent(vol.slot) : '');
      const { data } = await api('GET', '/signups/' + encodeURIComponent(su.id) + '/volunteers' + q);
      if (gen !== st.gen || st.selected !== String(su.id) || vol.slot !== (slot || '')) return;
      for (const v of Array.isArray(data.items) ? data.items : []) {
        const old = vol.rows.get(v.conversation_id); // a live event may have come first
        if (!old || !(Number(old.version) > Number(v.version))) vol.rows.set(v.conversation_id, v);
      }
      vol.total = Number(data.total) || 0;
      renderVolunteers();
    } catch (err) {
      if (gen === st.gen) status('Could not load the volunteers: ' + message(err), 'error');
    }
  }

  // A volunteer event: the row follows it if its signup is shown; a newcomer also counts in
  // the signup list (reloaded at most every 3 s while people keep coming).
  let signupsTimer = 0;
  function onVolunteer(v) {
    if (!v || typeof v.conversation_id !== 'string' || typeof v.signup_id !== 'string') return;
    if (st.selected === v.signup_id && !$('#volunteers').hidden) {
      const old = vol.rows.get(v.conversation_id);
      if (!old || !(Number(old.version) > Number(v.version))) { // the higher version is the newer view
        if (!old && (!vol.slot || v.slot_id === vol.slot)) vol.total++;
        vol.rows.set(v.conversation_id, Object.assign({}, old || {}, v));
        renderVolunteers();
      }
    }
    if (!signupsTimer && st.signups.some((x) => x.id === v.signup_id)) {
      signupsTimer = setTimeout(() => { signupsTimer = 0; loadSignups(); }, 3000);
    }
  }

  async function downloadCSV() {
    const id = st.selected;
    if (!id || !window.voluntreeFetch) return;
    try {
      const r = await window.voluntreeFetch('/signups/' + encodeURIComponent(id) + '/volunteers.csv');
      if (!r.ok) throw new Error('the server answered ' + r.status);
      const url = URL.createObjectURL(await r.blob());
      const a = el('a');
      a.href = url;
      a.download = 'volunteers-' + id + '.csv';
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      status('Could not export: ' + message(err), 'error');
    }
  }

  // A booking on the live feed: the slot's fill bar follows it (the volunteers' rows follow
  // their own events).
  function onBooking(b) {
    if (!b || typeof b.signup_id !== 'string') return;
    const su = st.signups.find((x) => x.id === b.signup_id);
    if (su) {
      const f = (su.fills || []).find((x) => x.slot_id === b.slot_id);
      if (f && Number.isFinite(Number(b.booked))) {
        f.filled = Number(b.booked);
        renderSignups();
      }
    }
  }

  // ---------------------------------------------------------------- posts

  const POST_ACTIONS = { draft: ['publish', 'Publish'], scheduled: ['cancel', 'Back to draft'], failed: ['retry', 'Retry'] };

  // loadPosts reads the posts, one load at a time: asked while one is on its way (a save's, a
  // live event's), it loads once more after it, since that one may have been answered before
  // the change. It resolves when the list is up to date.
  function loadPosts() {
    if (st.postsLoading) {
      st.postsDirty = true;
      return st.postsLoading;
    }
    st.postsLoading = (async () => {
      do {
        st.postsDirty = false;
        await loadPostsOnce();
      } while (st.postsDirty);
      st.postsLoading = null;
    })();
    return st.postsLoading;
  }

  async function loadPostsOnce() {
    const gen = st.gen;
    try {
      const [posts, pages, signups] = await Promise.all([api('GET', '/posts?limit=200'), api('GET', '/pages'),
        api('GET', '/signups?limit=200')]);
      if (gen !== st.gen) return;
      st.posts = Array.isArray(posts.data.items) ? posts.data.items : [];
      fillSelect($('#post-page'), (pages.data.items || []).map((p) => [p.id, String(p.name || p.id)]));
      fillSelect($('#post-signup'), (signups.data.items || []).map((su) => [su.id, String(su.title || su.id)]));
      $('#post-form').hidden = !can('admin');
      renderPosts();
    } catch (err) {
      if (gen === st.gen) status('Could not load the posts: ' + message(err), 'error');
    }
  }

  function fillSelect(sel, options) {
    const keep = sel.value;
    sel.replaceChildren();
    for (const [value, label] of options) {
      const o = el('option', null, label);
      o.value = String(value);
      sel.append(o);
    }
    if (keep) sel.value = keep;
  }

  function renderPosts() {
    const body = $('#posts-table tbody');
    body.replaceChildren();
    if (!st.posts || st.posts.length === 0) {
      const tr = el('tr');
      const td = el('td', 'muted', 'No post yet.');
      td.colSpan = 4;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const p of st.posts) {
      const tr = el('tr');
      tr.dataset.postId = String(p.id || '');
      const what = el('td');
      what.append(el('div', null, String(p.message || '').slice(0, 140)));
      if (p.error) what.append(el('div', 'form-error', 'Facebook said: ' + String(p.error) + (p.error_code ? ' (code ' + p.error_code + ')' : '')));
      const state = el('td', 'post-status ' + String(p.status || ''), String(p.status || ''));
      const when = p.published_at || p.publish_at;
      const at = el('td', 'small', when ? new Date(when).toLocaleString() : '—');
      const act = el('td');
      const a = POST_ACTIONS[p.status];
      if (a && can('admin')) {
        const b = el('button', 'secondary small-button', a[1]);
        b.type = 'button';
        b.addEventListener('click', () => postAction(p.id, a[0]));
        act.append(b);
      }
      tr.append(what, state, at, act);
      body.append(tr);
    }
  }

  async function postAction(id, action) {
    try {
      await api('POST', '/posts/' + encodeURIComponent(id) + '/' + action);
    } catch (err) {
      status(message(err), 'error');
    }
    loadPosts();
  }

  async function savePost(e) {
    e.preventDefault();
    const at = $('#post-at').value;
    const body = {
      signup_id: $('#post-signup').value, page_id: $('#post-page').value, message: $('#post-message').value.trim(),
      append_summary: $('#post-summary').checked, draft: $('#post-draft').checked,
    };
    if (at) body.publish_at = new Date(at).toISOString();
    if (!body.message) {
      $('#post-error').textContent = 'Write the message first.';
      $('#post-message').focus();
      return;
    }
    $('#post-save').disabled = true;
    try {
      await api('POST', '/posts', body);
      $('#post-message').value = '';
      $('#post-error').textContent = '';
      status(body.draft ? 'Draft saved.' : body.publish_at ? 'Post scheduled.' : 'Post saved: publishing now.', 'ok');
      await loadPosts();
    } catch (err) {
      $('#post-error').textContent = message(err);
    } finally {
      $('#post-save').disabled = false;
    }
  }

  // A post's status changes arrive on the live feed (the changed fields: status, error,
  // attempts, Facebook id): the list follows them. An unknown post reloads the list, and so
  // does any change while a load is on its way: that load may have been answered before the
  // change, and its answer would undo it.
  function onPost(p) {
    if (!p || typeof p.id !== 'string') return;
    if (st.postsLoading) {
      loadPosts(); // marks the load in flight dirty: one more after it
      return;
    }
    if (!st.posts) return;
    const i = st.posts.findIndex((q) => q.id === p.id);
    if (i < 0) {
      if (!$('#panel-posts').hidden) loadPosts();
      return;
    }
    const q = Object.assign({}, st.posts[i]);
    for (const k of ['status', 'error', 'attempts', 'facebook_post_id']) {
      if (k in p) q[k] = p[k];
    }
    if (!('error' in p)) delete q.error;
    if (q.status === 'published' && !q.published_at) q.published_at = new Date().toISOString();
    st.posts[i] = q;
    if (!$('#panel-posts').hidden) renderPosts();
  }

  // ---------------------------------------------------------------- stats

  const SVG = 'http://www.w3.org/2000/svg';
  const INTENTS = ['interested', 'question', 'donate', 'decline', 'thanks', 'other'];
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  };

  function isoDay(d) { return d.toISOString().slice(0, 10); }

  async function loadStats() {
    const from = $('#stats-from'), to = $('#stats-to');
    if (!from.value || !to.value) {
      const now = new Date();
      to.value = isoDay(now);
      from.value = isoDay(new Date(now.getTime() - 29 * 86400000));
    }
    const gen = st.gen;
    try {
      const q = '?from=' + encodeURIComponent(from.value) + '&to=' + encodeURIComponent(to.value);
      const { data } = await api('GET', '/stats/daily' + q);
      if (gen !== st.gen) return;
      renderChart(Array.isArray(data.days) ? data.days : []);
      renderFunnel(data.funnel || {});
    } catch (err) {
      if (gen === st.gen) status('Could not load the stats: ' + message(err), 'error');
    }
  }

  // renderChart draws the daily messages as bars stacked by intent, and the bookings as dots,
  // in an inline SVG that scales with its box; a table-like caption sums them up for readers.
  function renderChart(days) {
    const W = 720, H = 220, pad = 28, n = Math.max(1, days.length);
    const max = Math.max(1, ...days.map((d) => Math.max(Number(d.messages) || 0, Number(d.bookings) || 0)));
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', class: 'chart-svg' });
    let total = 0, bookings = 0;
    svg.append(svgEl('line', { x1: pad, y1: H - pad, x2: W - 4, y2: H - pad, class: 'axis' }));
    const bw = (W - pad - 8) / n;
    days.forEach((d, i) => {
      let y = H - pad;
      const x = pad + i * bw + 1;
      for (const intent of INTENTS) {
        const v = Number((d.intents || {})[intent]) || 0;
        if (!v) continue;
        const h = (H - 2 * pad) * v / max;
        y -= h;
        const r = svgEl('rect', { x: x.toFixed(1), y: y.toFixed(1), width: Math.max(1, bw - 2).toFixed(1), height: h.toFixed(1), class: 'bar ' + intent });
        const tip = svgEl('title');
        tip.textContent = d.date + ': ' + v + ' ' + intent;
        r.append(tip);
        svg.append(r);
      }
      const b = Number(d.bookings) || 0;
      if (b) {
        const c = svgEl('circle', { cx: (x + bw / 2).toFixed(1), cy: (H - pad - (H - 2 * pad) * b / max).toFixed(1), r: 3.5, class: 'booking' });
        const tip = svgEl('title');
        tip.textContent = d.date + ': ' + b + ' booked';
        c.append(tip);
        svg.append(c);
      }
      total += Number(d.messages) || 0;
      bookings += b;
      if (i === 0 || i === days.length - 1) {
        const t = svgEl('text', { x: (x + bw / 2).toFixed(1), y: H - 8, class: 'tick', 'text-anchor': i === 0 ? 'start' : 'end' });
        t.textContent = d.date;
        svg.append(t);
      }
    });
    const mt = svgEl('text', { x: 2, y: pad, class: 'tick' });
    mt.textContent = String(max);
    svg.append(mt);
    const label = total + ' messages and ' + bookings + ' bookings over ' + days.length + ' days';
    svg.setAttribute('aria-label', 'Messages a day by intent, and bookings: ' + label);
    $('#stats-chart').replaceChildren(svg);
    $('#stats-caption').textContent = label + '. Bars: messages by intent (' + INTENTS.join(', ') + '); dots: bookings.';
  }

  function renderFunnel(f) {
    const steps = [['messages', 'Messages'], ['interested', 'Interested'], ['volunteers', 'In a conversation'],
      ['answered', 'Answered'], ['email_verified', 'Email verified'], ['booked', 'Booked']];
    const top = Math.max(1, ...steps.map(([k]) => Number(f[k]) || 0));
    const box = $('#stats-funnel');
    box.replaceChildren();
    for (const [k, label] of steps) {
      const v = Number(f[k]) || 0;
      const row = el('div', 'funnel-row');
      row.dataset.step = k;
      const bar = el('div', 'fill-bar');
      const span = el('span');
      span.style.width = Math.round(100 * v / top) + '%';
      bar.append(span);
      row.append(el('span', 'fill-label', label + ': ' + v), bar);
      box.append(row);
    }
    box.append(el('p', 'muted small', (Number(f.waitlisted) || 0) + ' waitlisted, ' + (Number(f.declined) || 0) + ' declined or cancelled.'));
  }

  // ---------------------------------------------------------------- the model registry

  // The registry's versions and the nodes' versions; the panel follows a switch for a while
  // after an action (nodes report every 5 s).
  let modelsTimer = 0, modelsRun = 0;
  async function loadModels(followFor) {
    const gen = st.gen, run = ++modelsRun; // a newer call ends an older one's follow-up
    clearTimeout(modelsTimer);
    try {
      const { data } = await api('GET', '/models');
      if (gen !== st.gen) return;
      renderModels(Array.isArray(data.versions) ? data.versions : [], Array.isArray(data.nodes) ? data.nodes : []);
    } catch (err) {
      if (gen === st.gen) status('Could not load the model registry: ' + message(err), 'error');
    }
    if (followFor > 0 && run === modelsRun && !$('#panel-models').hidden) modelsTimer = setTimeout(() => loadModels(followFor - 1), 1000);
  }

  function bytes(n) {
    n = Number(n) || 0;
    return n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + ' MB' : n >= 1024 ? Math.round(n / 1024) + ' kB' : n + ' B';
  }

  function renderModels(versions, nodes) {
    const body = $('#models-table tbody');
    body.replaceChildren();
    if (versions.length === 0) {
      const tr = el('tr');
      const td = el('td', 'muted', 'No version pushed: every node serves the model file it started with.');
      td.colSpan = 6;
      tr.append(td);
      body.append(tr);
    }
    for (const v of versions) {
      const tr = el('tr');
      tr.dataset.tag = String(v.tag || '');
      const acc = v.scores && typeof v.scores.accuracy === 'number' ? v.scores.accuracy.toFixed(3) : '—';
      const what = el('td');
      what.append(el('div', null, String(v.tag || '')));
      if (v.note) what.append(el('div', 'muted small', String(v.note)));
      const state = v.promoted ? 'promoted' : v.expires ? 'expires ' + new Date(v.expires).toLocaleDateString() : 'kept';
      const act = el('td');
      if (!v.promoted) {
        const p = el('button', 'small-button', 'Promote');
        p.type = 'button';
        p.setAttribute('aria-label', 'Promote ' + String(v.tag));
        p.addEventListener('click', () => modelAction(p, 'POST', '/models/' + encodeURIComponent(v.tag) + '/promote', 'Promoting ' + v.tag + ' (checked first)…', (d) => v.tag + ' promoted' + (d.previous ? ' (was ' + d.previous + ')' : '') + ': the nodes switch within seconds.'));
        const r = el('button', 'secondary small-button', 'Remove');
        r.type = 'button';
        r.setAttribute('aria-label', 'Remove ' + String(v.tag));
        r.addEventListener('click', () => {
          if (window.confirm('Remove model version ' + v.tag + '?')) modelAction(r, 'DELETE', '/models/' + encodeURIComponent(v.tag), 'Removing ' + v.tag + '…', () => v.tag + ' removed.');
        });
        act.append(p, r);
      }
      tr.append(what, el('td', null, acc), el('td', null, bytes(v.size)),
        el('td', 'small', v.created ? new Date(v.created).toLocaleString() : ''), el('td', 'model-state ' + (v.promoted ? 'promoted' : ''), state), act);
      body.append(tr);
    }
    const nb = $('#model-nodes tbody');
    nb.replaceChildren();
    for (const n of nodes) {
      const tr = el('tr');
      tr.dataset.node = String(n.node || '');
      tr.append(el('td', null, String(n.node || '')), el('td', 'node-version', String(n.version || '')),
        el('td', 'small', n.since ? new Date(n.since).toLocaleTimeString() : ''), el('td', 'small', n.seen ? new Date(n.seen).toLocaleTimeString() : ''));
      nb.append(tr);
    }
  }

  async function modelAction(button, method, path, doing, done) {
    const out = $('#model-push-status');
    button.disabled = true;
    out.className = 'small';
    out.textContent = doing;
    try {
      const { data } = await api(method, path);
      out.className = 'small ok';
      out.textContent = done(data || {});
    } catch (err) {
      out.className = 'small form-error';
      out.textContent = message(err);
    } finally {
      button.disabled = false;
    }
    loadModels(15);
  }

  function hex(buf) {
    return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  // pushModel sends the chosen file in the API's chunks (declare, chunks, complete), retrying a
  // failed chunk a few times; the server checks the file before it becomes a version.
  async function pushModel(e) {
    e.preventDefault();
    const out = $('#model-push-status'), bar = $('#model-push-progress'), button = $('#model-push-button');
    const file = $('#model-file').files[0], tag = $('#model-tag').value.trim(), note = $('#model-note').value.trim();
    out.className = 'small form-error';
    if (!file) { out.textContent = 'Choose a model file (.vtm, or a TorchScript .pt).'; return; }
    if (!tag) { out.textContent = 'Give the version a tag.'; $('#model-tag').focus(); return; }
    if (!window.crypto || !window.crypto.subtle) { out.textContent = 'This browser cannot checksum the file here (it needs HTTPS): use `voluntree model push`.'; return; }
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    out.className = 'small';
    try {
      out.textContent = 'Reading ' + file.name + '…';
      const sha256 = hex(await window.crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
      const { data: up } = await api('POST', '/models/uploads', { tag, note, size: file.size, sha256 });
      for (let n = 0; n < up.chunks; n++) {
        const part = file.slice(n * up.chunk_size, Math.min((n + 1) * up.chunk_size, file.size));
        for (let attempt = 1; ; attempt++) {
          try {
            await api('PUT', '/models/uploads/' + encodeURIComponent(up.id) + '/chunks/' + n, part);
            break;
          } catch (err) {
            if (attempt >= 3 || (err.status >= 400 && err.status < 500)) throw err;
            await new Promise((r) => setTimeout(r, 500 * attempt));
          }
        }
        bar.value = (n + 1) / (up.chunks + 1);
        out.textContent = 'Sent ' + bytes(Math.min((n + 1) * up.chunk_size, file.size)) + ' of ' + bytes(file.size) + '…';
      }
      out.textContent = 'Checking ' + tag + ' (loading and scoring it on the validation set)…';
      const { data: v } = await api('POST', '/models/uploads/' + encodeURIComponent(up.id) + '/complete');
      bar.value = 1;
      out.className = 'small ok';
      const acc = v.scores && typeof v.scores.accuracy === 'number' ? ', accuracy ' + v.scores.accuracy.toFixed(3) : '';
      out.textContent = v.tag + ' pushed' + acc + '. Promote it to serve it.';
      $('#model-tag').value = '';
      $('#model-note').value = '';
    } catch (err) {
      out.className = 'small form-error';
      out.textContent = 'Not pushed: ' + message(err);
    } finally {
      button.disabled = false;
      bar.hidden = true;
    }
    loadModels(0);
  }

  // ---------------------------------------------------------------- people

  async function loadPeople() {
    const gen = st.gen;
    try {
      const jobs = [api('GET', '/members')];
      if (can('owner')) jobs.push(api('GET', '/invitations'), api('GET', '/tokens'));
      const [members, invitations, tokens] = await Promise.all(jobs);
      if (gen !== st.gen) return;
      renderMembers(members.data.items || []);
      if (invitations) renderInvitations(invitations.data.items || []);
      if (tokens) renderTokens(tokens.data.items || []);
    } catch (err) {
      if (gen === st.gen) status('Could not load the people: ' + message(err), 'error');
    }
  }

  function renderMembers(items) {
    const body = $('#members-table tbody');
    body.replaceChildren();
    const self = st.me && st.me.user ? st.me.user.id : '';
    for (const m of items) {
      const tr = el('tr');
      const u = m.user || {};
      const name = String(u.name || m.user_id) + (u.github_login ? ' (@' + u.github_login + ')' : '') + (m.user_id === self ? ' — you' : '');
      const roleCell = el('td');
      if (can('owner')) {
        const sel = el('select');
        sel.setAttribute('aria-label', 'Role of ' + String(u.name || m.user_id));
        for (const r of ['viewer', 'admin', 'owner']) {
          const o = el('option', null, r);
          o.value = r;
          o.selected = r === m.role;
          sel.append(o);
        }
        sel.addEventListener('change', () => changeRole(m.user_id, sel));
        roleCell.append(sel);
      } else {
        roleCell.textContent = String(m.role);
      }
      const act = el('td');
      if (can('owner') && m.user_id !== self) {
        const rm = el('button', 'secondary small-button', 'Remove');
        rm.type = 'button';
        rm.setAttribute('aria-label', 'Remove ' + String(u.name || m.user_id));
        rm.addEventListener('click', () => removeMember(m.user_id));
        act.append(rm);
      }
      tr.append(el('td', null, name), roleCell, act);
      body.append(tr);
    }
  }

  async function changeRole(userID, sel) {
    try {
      await api('PATCH', '/members/' + encodeURIComponent(userID), { role: sel.value });
      status('Role changed.', 'ok');
    } catch (err) {
      status(message(err), 'error');
    }
    loadPeople();
  }

  async function removeMember(userID) {
    try {
      await api('DELETE', '/members/' + encodeURIComponent(userID));
      status('Member removed: their sessions here have ended.', 'ok');
    } catch (err) {
      status(message(err), 'error');
    }
    loadPeople();
  }

  function listItem(text, actionLabel, action) {
    const li = el('li', null, text + ' ');
    const b = el('button', 'link-button', actionLabel);
    b.type = 'button';
    b.addEventListener('click', action);
    li.append(b);
    return li;
  }

  function renderInvitations(items) {
    const ul = $('#invitation-list');
    ul.replaceChildren();
    for (const inv of items) {
      ul.append(listItem(String(inv.email) + ' as ' + String(inv.role) + ', until ' + new Date(inv.expires_at).toLocaleDateString(),
        'revoke', async () => {
          try { await api('DELETE', '/invitations/' + encodeURIComponent(inv.id)); } catch (err) { status(message(err), 'error'); }
          loadPeople();
        }));
    }
  }

  function renderTokens(items) {
    const ul = $('#token-list');
    ul.replaceChildren();
    for (const t of items) {
      const exp = t.expires_at ? ', expires ' + new Date(t.expires_at).toLocaleDateString() : '';
      ul.append(listItem(String(t.hint) + '… ' + String(t.role) + (t.label ? ' — ' + String(t.label) : '') + exp,
        'revoke', async () => {
          try { await api('DELETE', '/tokens/' + encodeURIComponent(t.id)); status('Token revoked.', 'ok'); } catch (err) { status(message(err), 'error'); }
          loadPeople();
        }));
    }
  }

  async function invite(e) {
    e.preventDefault();
    const email = $('#invite-email').value.trim();
    try {
      const { data } = await api('POST', '/invitations', { email, role: $('#invite-role').value });
      $('#invite-email').value = '';
      $('#invite-result').textContent = data.link ? 'No mail server here: send this link yourself: ' + data.link
        : 'Invitation sent to ' + email + '.';
    } catch (err) {
      $('#invite-result').textContent = message(err);
    }
    loadPeople();
  }

  async function createToken(e) {
    e.preventDefault();
    try {
      const { data } = await api('POST', '/tokens', { label: $('#token-label').value.trim(), role: $('#token-role').value });
      $('#token-label').value = '';
      const out = $('#token-result');
      out.replaceChildren('Copy it now, it is shown once: ', el('code', null, String(data.token)));
    } catch (err) {
      $('#token-result').textContent = message(err);
    }
    loadPeople();
  }

  // ---------------------------------------------------------------- sign-in changes

  function onOrg(me) {
    st.gen++;
    st.me = me;
    st.role = me && typeof me.role === 'string' ? me.role : '';
    st.signups = [];
    st.posts = null;
    st.selected = '';
    $('#manage').hidden = !me;
    $('#signup-form').hidden = true;
    $('#volunteers').hidden = true;
    status('', '');
    if (!me) return;
    $('#signup-new').hidden = !can('admin');
    $('#owner-only').hidden = !can('owner');
    $('#tab-models').hidden = !(me.features && me.features.models === true);
    selectTab('signups', false);
    loadSignups();
  }

  function init() {
    initTabs();
    $('#signup-new').addEventListener('click', () => openForm(null));
    $('#signup-cancel').addEventListener('click', () => { $('#signup-form').hidden = true; });
    $('#su-add-slot').addEventListener('click', () => {
      const row = slotRow(null);
      $('#su-slots').append(row);
      row.querySelector('input').focus();
    });
    $('#signup-form').addEventListener('submit', saveSignup);
    $('#volunteers-csv').addEventListener('click', downloadCSV);
    $('#invite-form').addEventListener('submit', invite);
    $('#token-create').addEventListener('submit', createToken);
    $('#stats-range').addEventListener('submit', (e) => { e.preventDefault(); loadStats(); });
    $('#post-form').addEventListener('submit', savePost);
    $('#model-push').addEventListener('submit', pushModel);
    $('#model-rollback').addEventListener('click', (e) => modelAction(e.currentTarget, 'POST', '/models/rollback', 'Rolling back…', (d) => 'Rolled back: ' + d.promoted + ' is promoted.'));
    document.addEventListener('voluntree:post', (e) => onPost(e.detail));
    document.addEventListener('voluntree:booking', (e) => onBooking(e.detail));
    document.addEventListener('voluntree:volunteer', (e) => onVolunteer(e.detail));
    $('#volunteers-all').addEventListener('click', () => { if (vol.su) showVolunteers(vol.su, ''); });
    document.addEventListener('voluntree:org', (e) => onOrg(e.detail));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
