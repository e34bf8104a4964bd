// centralino web console: one script for every desk. The server picks the
// desk (`<html data-page>`) and the language default (`lang`); this fills
// the page from the JSON API and the /ws event socket. All text reaches the
// DOM through textContent (never innerHTML), so party names and ticket
// subjects are shown as text whatever they contain.
'use strict';

const T = {
  en: {
    login: 'Log in', username: 'Username', password: 'Password', logout: 'Log out', badLogin: 'Wrong username or password',
    support: 'Support desk', agent: 'Agent desk', wallboard: 'Wallboard', marketer: 'Marketer desk',
    online: 'live', offline: 'reconnecting…', incoming: 'Incoming call', waiting: 'Waiting for calls…',
    stage: 'Stage', owner: 'Owner', city: 'City', openTickets: 'Open tickets', history: 'Recent history', calls: 'Recent calls',
    unknown: 'Unknown caller', quickCreate: 'Create the caller', name: 'Name', phone: 'Phone', create: 'Create', created: 'Created',
    notes: 'Call notes (kept in this browser until saved)', queue: 'Ticket queue', none: 'Nothing here',
    ready: 'Ready', pause: 'Pause', reason: 'Pause reason', dialerMissing: 'The dialer is not connected yet: your state is shown here only.',
    agenda: 'Agenda (today)', leaderboard: 'Leaderboard (30 days)', points: 'Points', callsPerHour: 'Calls per hour (24 h)',
    inbound: 'inbound', outbound: 'outbound', answered: 'answered', ringingNow: 'Ringing now',
    listBuilder: 'List builder', kind: 'Kind', any: 'any', person: 'person', company: 'company', stages: 'Stages',
    characteristic: 'Characteristic (key=value)', consent: 'Consent given for', matching: 'parties match', saveList: 'Save as dynamic list', listName: 'List name', saved: 'Saved',
    occupancy: 'Talk occupancy', agentsLive: 'Agents (live)', dialerLive: 'Dialer (live)', call: 'Call', dialLevel: 'Dial level', abandonLive: 'Abandon rate (this run)', abandonStored: 'Abandon rate (stored)', bridgeP99: 'Answer→bridge p99',
    monitor: 'Message monitor', messageNo: 'Campaign message #', recipients: 'recipients', recipientsN: 'recipients', queued: 'queued', sentN: 'sent', openedHuman: 'opened (people)', openedMachine: 'opened (machines)',
    clicked: 'clicked', bounced: 'bounced', unsubscribed: 'unsubscribed', complained: 'complaints', human: 'people', machine: 'machines',
    leave: 'Log out of the campaign', script: 'Script', yes: 'yes', no: 'no', nextLead: 'Next lead (preview)', dial: 'Dial', skip: 'Skip', hold: 'Hold', unhold: 'Resume', campaign: 'Campaign', phoneOff: 'Softphone off', phoneConnecting: 'Softphone connecting…', phoneOn: 'Softphone on', mute: 'Mute (m)', unmute: 'Unmute (m)', hangup: 'Hang up (h)',
    card: 'Customer card', connected: 'Connected', disposed: 'Booked', lead: 'lead', callbackAt: 'Callback at (for a callback outcome)', wrapUp: 'Wrap-up', stopped: 'stopped',
    logged_out: 'Logged out', on_call: 'On call', wrap_up: 'Wrap-up', reserved: 'Reserved', paused: 'Paused',
    callNumber: 'Call', due: 'Due', subject: 'Subject', state: 'State', priority: 'Priority', direction: 'Direction', outcome: 'Outcome', when: 'When', action: 'Action',
  },
  it: {
    login: 'Accedi', username: 'Utente', password: 'Password', logout: 'Esci', badLogin: 'Utente o password errati',
    support: 'Assistenza', agent: 'Operatore', wallboard: 'Wallboard', marketer: 'Marketing',
    online: 'in linea', offline: 'riconnessione…', incoming: 'Chiamata in arrivo', waiting: 'In attesa di chiamate…',
    stage: 'Fase', owner: 'Titolare', city: 'Città', openTickets: 'Ticket aperti', history: 'Storico recente', calls: 'Chiamate recenti',
    unknown: 'Chiamante sconosciuto', quickCreate: 'Crea il chiamante', name: 'Nome', phone: 'Telefono', create: 'Crea', created: 'Creato',
    notes: 'Note della chiamata (conservate in questo browser fino al salvataggio)', queue: 'Coda ticket', none: 'Niente da mostrare',
    ready: 'Pronto', pause: 'Pausa', reason: 'Motivo della pausa', dialerMissing: 'Il dialer non è ancora collegato: lo stato è mostrato solo qui.',
    agenda: 'Agenda (oggi)', leaderboard: 'Classifica (30 giorni)', points: 'Punti', callsPerHour: 'Chiamate per ora (24 h)',
    inbound: 'entranti', outbound: 'uscenti', answered: 'risposte', ringingNow: 'Squillano ora',
    listBuilder: 'Costruttore di liste', kind: 'Tipo', any: 'tutti', person: 'persona', company: 'azienda', stages: 'Fasi',
    characteristic: 'Caratteristica (chiave=valore)', consent: 'Consenso dato per', matching: 'anagrafiche corrispondono', saveList: 'Salva come lista dinamica', listName: 'Nome della lista', saved: 'Salvata',
    occupancy: 'Occupazione in conversazione', agentsLive: 'Operatori (live)', dialerLive: 'Dialer (live)', call: 'Chiamata', dialLevel: 'Livello di chiamata', abandonLive: 'Tasso di abbandono (sessione)', abandonStored: 'Tasso di abbandono (storico)', bridgeP99: 'Risposta→collegamento p99',
    monitor: 'Monitor messaggi', messageNo: 'Messaggio di campagna n.', recipients: 'destinatari', recipientsN: 'destinatari', queued: 'in coda', sentN: 'inviati', openedHuman: 'aperti (persone)', openedMachine: 'aperti (macchine)',
    clicked: 'clic', bounced: 'rimbalzi', unsubscribed: 'disiscritti', complained: 'reclami', human: 'persone', machine: 'macchine',
    leave: 'Esci dalla campagna', script: 'Copione', yes: 'sì', no: 'no', nextLead: 'Prossimo contatto (anteprima)', dial: 'Chiama', skip: 'Salta', hold: 'Attesa', unhold: 'Riprendi', campaign: 'Campagna', phoneOff: 'Softphone spento', phoneConnecting: 'Softphone in connessione…', phoneOn: 'Softphone attivo', mute: 'Muto (m)', unmute: 'Riattiva (m)', hangup: 'Riaggancia (h)',
    card: 'Scheda cliente', connected: 'In linea', disposed: 'Registrato', lead: 'contatto', callbackAt: 'Richiamata alle (per un esito di richiamata)', wrapUp: 'Post-chiamata', stopped: 'ferma',
    logged_out: 'Disconnesso', on_call: 'In chiamata', wrap_up: 'Post-chiamata', reserved: 'Riservato', paused: 'In pausa',
    callNumber: 'Chiama', due: 'Scadenza', subject: 'Oggetto', state: 'Stato', priority: 'Priorità', direction: 'Direzione', outcome: 'Esito', when: 'Quando', action: 'Azione',
  },
};
const DESKS = ['support', 'agent', 'wallboard', 'marketer'];
const page = document.documentElement.dataset.page;
let lang = localStorage.getItem('centralino.lang') || document.documentElement.lang || 'en';
if (!T[lang]) lang = 'en';
const t = (k) => T[lang][k] || T.en[k] || k;

// el('div', {class: 'x'}, 'text', child…): strings become text nodes.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const $ = (s) => document.querySelector(s);
const when = (ms) => (ms ? new Date(ms).toLocaleString(lang === 'it' ? 'it-IT' : 'en-GB') : '');
function csrf() {
  const m = document.cookie.split(';').map((s) => s.trim()).find((s) => s.startsWith('centralino_csrf='));
  return m ? m.slice('centralino_csrf='.length) : '';
}

// Every API call goes through here: the CSRF header on anything that
// changes state, and a lost session sends the user back to the login page.
async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf();
  const r = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && page !== 'login') { location.href = '/console/login?next=' + page; throw new Error('unauthenticated'); }
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) { const e = new Error((data && (data.detail || data.title)) || r.statusText); e.status = r.status; throw e; }
  return data;
}

// Click-to-call: every phone number shown is a button that dials it from
// the agent's softphone leg (POST /api/console/dial); the answer pops the
// card as a dialer call does. The number is shown as text.
function phoneLink(number) {
  if (!number) return '';
  const b = el('button', { class: 'c2c', type: 'button', 'data-number': number, title: t('callNumber') + ' ' + number }, number);
  b.addEventListener('click', async () => {
    const out = $('#agent-msg') || $('#c2c-msg');
    b.disabled = true;
    try { await api('POST', '/api/console/dial', { number }); if (out) out.textContent = ''; } catch (e) { if (out) out.textContent = t('callNumber') + ' ' + number + ': ' + e.message; } finally { b.disabled = false; }
  });
  return b;
}
window.centralinoPhoneLink = phoneLink;

function panel(title, ...kids) { return el('section', { class: 'panel' }, el('h2', {}, title), ...kids); }
function table(cols, rows) {
  if (!rows.length) return el('p', { class: 'muted' }, t('none'));
  return el('table', {}, el('tr', {}, cols.map((c) => el('th', {}, c[0]))), rows.map((r) => el('tr', {}, cols.map((c) => el('td', {}, c[1](r))))));
}

function header(me) {
  const nav = $('#nav');
  for (const d of DESKS) nav.append(el('a', { href: '/console/' + d, class: d === page ? 'here' : '' }, t(d)));
  $('#who').textContent = me ? me.username + ' (' + me.role + ')' : '';
  $('#lang').textContent = lang === 'it' ? 'English' : 'Italiano';
  $('#lang').addEventListener('click', () => { localStorage.setItem('centralino.lang', lang === 'it' ? 'en' : 'it'); location.reload(); });
  $('#logout').addEventListener('click', async () => { try { await api('POST', '/api/auth/logout'); } finally { location.href = '/console/login'; } });
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  if (!me) { $('#logout').hidden = true; $('#link').hidden = true; }
}

// ---- the event socket: reconnects by itself with capped, jittered back-off.
const handlers = {};
let ME = null; // the signed-in user (/api/me)
// After a reconnect the desk re-reads what it may have missed (onReconnect).
// window.centralinoWs is the live socket (the browser test drops it).
let onReconnect = null;
function connect() {
  let delay = 500;
  let opens = 0;
  const open = () => {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    window.centralinoWs = ws;
    ws.onopen = () => {
      delay = 500; opens += 1;
      $('#link').className = 'link on'; $('#link').textContent = t('online'); document.body.dataset.ws = 'open'; document.body.dataset.wsOpens = String(opens);
      if (opens > 1 && onReconnect) Promise.resolve().then(onReconnect).catch(() => {});
    };
    ws.onmessage = (m) => { let ev; try { ev = JSON.parse(m.data); } catch (_) { return; } (handlers[ev.type] || (() => {}))(ev); };
    ws.onclose = async () => {
      $('#link').className = 'link off'; $('#link').textContent = t('offline'); document.body.dataset.ws = 'closed';
      // A closed socket may mean the session ended: /api/me redirects then.
      try { await api('GET', '/api/me'); } catch (_) { /* offline: keep trying */ }
      setTimeout(open, delay + Math.random() * delay / 2);
      delay = Math.min(delay * 2, 15000);
    };
  };
  open();
}

// ---- login
function loginPage() {
  const err = el('p', { class: 'error', id: 'login-error' });
  const user = el('input', { id: 'username', name: 'username', autocomplete: 'username', required: true });
  const pass = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = el('form', { id: 'login' }, el('label', { for: 'username' }, t('username')), user, el('label', { for: 'password' }, t('password')), pass,
    el('button', { class: 'primary', type: 'submit' }, t('login')), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const me = await api('POST', '/api/auth/login', { username: user.value, password: pass.value });
      const next = new URLSearchParams(location.search).get('next');
      location.href = '/console/' + (DESKS.includes(next) ? next : ({ agent: 'agent', support: 'support', marketer: 'marketer' }[me.role] || 'wallboard'));
    } catch (_) { err.textContent = t('badLogin'); }
  });
  const main = $('#main');
  main.append(el('section', { class: 'panel login' }, el('h2', {}, 'centralino — ' + t('login')), form));
}

// ---- notes: never lost to a reload or a dropped socket.
function notesBox(key) {
  const k = 'centralino.notes.' + key;
  const box = el('textarea', { id: 'notes' });
  box.value = localStorage.getItem(k) || '';
  box.addEventListener('input', () => localStorage.setItem(k, box.value));
  return el('div', {}, el('label', { for: 'notes' }, t('notes')), box);
}

// ---- support desk
async function supportDesk() {
  const pops = el('div', { id: 'pops' }, el('p', { class: 'muted' }, t('waiting')));
  const queue = el('div', { id: 'queue' });
  $('#main').append(panel(t('incoming'), pops, notesBox('support')), panel(t('queue'), queue));
  handlers.pop = (ev) => showPop(pops, ev);
  try {
    const q = await api('GET', '/api/tickets?queue=all&limit=50');
    queue.append(table([['#', (x) => x.no], [t('subject'), (x) => x.subject], [t('state'), (x) => x.state], [t('priority'), (x) => x.priority], [t('when'), (x) => when(x.updated_at)]], q.items));
  } catch (e) { queue.append(el('p', { class: 'muted' }, e.message)); }
}

async function showPop(box, ev) {
  box.replaceChildren();
  const head = el('div', { class: 'card ringing', id: 'pop-' + ev.call_id, 'data-call': ev.call_id },
    el('div', { class: 'muted' }, t('incoming') + ' · ', phoneLink(ev.caller_e164 || ev.caller), ' → ' + ev.callee + ' · ' + when(ev.at)), el('span', { class: 'muted', id: 'c2c-msg' }));
  box.append(head);
  if (!ev.parties.length) {
    head.append(el('div', { class: 'name' }, t('unknown')));
    const name = el('input', { id: 'new-name' });
    const phone = el('input', { id: 'new-phone', value: ev.caller_e164 || ev.caller });
    const msg = el('span', { class: 'muted' });
    const form = el('form', { id: 'quick-create' }, el('h2', {}, t('quickCreate')), el('label', {}, t('name')), name, el('label', {}, t('phone')), phone,
      el('button', { class: 'primary', type: 'submit' }, t('create')), msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const p = await api('POST', '/api/parties', { kind: 'person', name: name.value, phones: [{ number: phone.value }] });
        msg.textContent = t('created') + ' #' + p.id;
      } catch (err) { msg.textContent = err.message; }
    });
    box.append(form);
    return;
  }
  for (const p of ev.parties) {
    const card = el('div', { class: 'party', 'data-party': p.id },
      el('div', { class: 'name party-name' }, p.name),
      el('div', {}, t('stage') + ': ' + p.stage + ' · ' + t('owner') + ': ' + (p.owner_id ?? '—') + ' · ' + t('city') + ': ' + (p.city || '—')));
    head.append(card);
    const tickets = el('div'), hist = el('div'), calls = el('div');
    box.append(el('h2', {}, t('openTickets')), tickets, el('h2', {}, t('calls')), calls, el('h2', {}, t('history')), hist);
    api('GET', '/api/users/' + p.owner_id).then((u) => { if (u) card.lastChild.textContent = t('stage') + ': ' + p.stage + ' · ' + t('owner') + ': ' + (u.display_name || u.username) + ' · ' + t('city') + ': ' + (p.city || '—'); }).catch(() => {});
    api('GET', '/api/tickets?queue=all&limit=200').then((q) => tickets.append(table([['#', (x) => x.no], [t('subject'), (x) => x.subject], [t('state'), (x) => x.state]],
      q.items.filter((x) => x.requester_id === p.id)))).catch((e) => tickets.append(el('p', { class: 'muted' }, e.message)));
    api('GET', '/api/parties/' + p.id + '/calls').then((c) => calls.append(table([[t('when'), (x) => when(x.started_at)], [t('direction'), (x) => x.direction], [t('outcome'), (x) => x.outcome]], c.slice(0, 5)))).catch(() => {});
    api('GET', '/api/parties/' + p.id + '/history').then((h) => hist.append(table([[t('when'), (x) => when(x.at)], [t('action'), (x) => x.action]], h.slice(0, 5)))).catch(() => {});
  }
}

// ---- the softphone: the agent's nailed-up audio leg over WebRTC. The
// offer is sent complete (no trickle ICE); the server answers with PCMU
// only and relays the audio to the dialer's calls.
const phone = { pc: null, leg: null, stream: null, muted: false };
window.centralinoPhone = phone;
async function openPhone(audio) {
  if (phone.pc && phone.pc.connectionState !== 'failed' && phone.pc.connectionState !== 'closed') return phone.leg;
  const pc = new RTCPeerConnection({ iceServers: [] });
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  for (const tr of stream.getTracks()) pc.addTrack(tr, stream);
  pc.ontrack = (e) => { audio.srcObject = e.streams[0] || new MediaStream([e.track]); audio.play().catch(() => {}); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === 'complete') return ok();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') ok(); });
    setTimeout(ok, 3000);
  });
  const ans = await api('POST', '/api/console/softphone', { sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: 'answer', sdp: ans.sdp });
  Object.assign(phone, { pc, leg: ans.leg, stream });
  pc.addEventListener('connectionstatechange', () => { document.body.dataset.phone = pc.connectionState; });
  return ans.leg;
}
// Packets the browser received from the call (the test reads this too).
async function phoneInbound() {
  if (!phone.pc) return 0;
  let n = 0;
  (await phone.pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio') n += r.packetsReceived; });
  return n;
}
window.centralinoPhoneInbound = phoneInbound;

// ---- agent desk: campaign, ready/pause, softphone, card pop, disposition.
async function agentDesk() {
  const st = el('span', { class: 'state', id: 'agent-state' }, '—');
  const camp = el('select', { id: 'campaign' });
  const reason = el('select', { id: 'pause-reason' }, ['break', 'training', 'admin'].map((r) => el('option', { value: r }, r)));
  const msg = el('p', { class: 'muted', id: 'agent-msg' });
  const phoneState = el('span', { class: 'muted', id: 'phone-state' }, t('phoneOff'));
  const audio = el('audio', { id: 'remote-audio', autoplay: true });
  const card = el('div', { id: 'card' }, el('p', { class: 'muted' }, t('waiting')));
  const wrap = el('span', { class: 'muted', id: 'wrapup' });
  const mute = el('button', { class: 'secondary', id: 'mute', type: 'button' }, t('mute'));
  const hang = el('button', { class: 'secondary', id: 'hangup', type: 'button' }, t('hangup'));
  let campaigns = [];
  let loggedIn = null; // campaign id
  let current = null; // { call, parties, number }
  let wrapTimer = null;
  const cid = () => Number(camp.value);
  const show = (s) => { const k = s || 'logged_out'; st.textContent = t(k) ; st.className = 'state ' + k; st.dataset.state = k; };
  const preview = el('div', { id: 'preview' });
  // In preview mode a ready agent is reserved with the next lead's card:
  // Dial places the call (its answer comes to this agent), Skip takes the next.
  const showNow = (now) => {
    show(now.state);
    preview.replaceChildren();
    if (now.state !== 'reserved' || !now.card) return;
    const c = now.card;
    const name = el('div', { class: 'name party-name' }, c.number);
    const box = el('div', { class: 'card preview', id: 'preview-card', 'data-lead': c.lead_id }, el('div', { class: 'muted' }, t('nextLead') + ' · ', phoneLink(c.number)), name,
      el('div', { class: 'row' }, el('button', { class: 'primary', id: 'preview-dial', type: 'button', onclick: async () => {
        try { await api('POST', '/api/dialer/campaigns/' + loggedIn + '/preview/dial', {}); box.classList.add('dialing'); box.dataset.dialing = '1'; } catch (e) { msg.textContent = e.message; }
      } }, t('dial') + ' (d)'), el('button', { class: 'secondary', id: 'preview-skip', type: 'button', onclick: async () => {
        try { showNow(await api('POST', '/api/dialer/campaigns/' + loggedIn + '/preview/skip', {})); } catch (e) { msg.textContent = e.message; }
      } }, t('skip') + ' (s)')));
    preview.append(box);
    if (c.party_id) api('GET', '/api/parties/' + c.party_id).then((p) => { name.textContent = p.name; name.dataset.party = p.id; }).catch(() => {});
  };
  // A ready agent on a preview campaign is reserved with a card by the
  // dialer's next tick: ask for the state until the card is there.
  setInterval(async () => {
    const c = campaigns.find((x) => x.id === loggedIn);
    if (!c || c.config.pacing !== 'preview' || current || st.dataset.state !== 'ready') return;
    try { showNow(await action('state')); } catch (_) { /* next time */ }
  }, 1000);
  const action = async (a) => { const now = await api('POST', '/api/console/campaigns/' + cid() + '/agent', { action: a, reason: a === 'pause' ? reason.value : undefined }); return now; };
  // Back from a dropped socket: the events in between are gone, so read
  // the agent's state again (a card already open stays, with its drafts).
  onReconnect = async () => {
    if (!loggedIn) return;
    const now = await action('state');
    if (current) show(now.state); else showNow(now);
  };
  const ready = async () => {
    msg.textContent = '';
    if (!camp.value) { localStorage.setItem('centralino.agentState', 'ready'); show('ready'); msg.textContent = t('dialerMissing'); return; }
    try {
      if (loggedIn !== cid() || !phone.pc) {
        phoneState.textContent = t('phoneConnecting');
        await openPhone(audio);
        phoneState.textContent = t('phoneOn') + ' · ' + phone.leg;
        try { showNow(await action('login')); } catch (e) { if (e.status !== 409) throw e; showNow(await action('resume')); }
        loggedIn = cid();
      } else {
        showNow(await action('resume'));
      }
    } catch (e) { msg.textContent = e.message; }
  };
  const pause = async () => {
    if (!loggedIn) { localStorage.setItem('centralino.agentState', 'paused'); show('paused'); return; }
    try { showNow(await action('pause')); } catch (e) { msg.textContent = e.message; }
  };
  // Leaving the campaign ends the softphone leg too.
  const leave = el('button', { class: 'secondary', id: 'leave', type: 'button', onclick: async () => {
    if (!loggedIn) return;
    try {
      showNow(await api('POST', '/api/console/campaigns/' + loggedIn + '/agent', { action: 'logout' }));
      await api('DELETE', '/api/console/softphone');
      if (phone.pc) phone.pc.close();
      Object.assign(phone, { pc: null, leg: null });
      phoneState.textContent = t('phoneOff');
      loggedIn = null;
    } catch (e) { msg.textContent = e.message; }
  } }, t('leave'));
  mute.addEventListener('click', () => {
    phone.muted = !phone.muted;
    if (phone.stream) for (const tr of phone.stream.getAudioTracks()) tr.enabled = !phone.muted;
    mute.textContent = phone.muted ? t('unmute') : t('mute');
    mute.classList.toggle('on', phone.muted);
  });
  hang.addEventListener('click', async () => { try { await api('POST', '/api/console/hangup'); } catch (e) { msg.textContent = e.message; } });
  let held = false;
  const holdBtn = el('button', { class: 'secondary', id: 'hold', type: 'button' }, t('hold'));
  holdBtn.addEventListener('click', async () => {
    try { await api('POST', '/api/console/hold', { hold: !held }); held = !held; holdBtn.classList.toggle('on', held); holdBtn.textContent = held ? t('unhold') : t('hold'); } catch (e) { msg.textContent = e.message; }
  });
  const keypad = el('div', { class: 'keypad', id: 'keypad' }, [...'123456789*0#'].map((k) => el('button', { class: 'secondary key', type: 'button', 'data-key': k,
    onclick: async () => { try { await api('POST', '/api/console/dtmf', { digits: k }); } catch (e) { msg.textContent = e.message; } } }, k)));

  // The disposition form comes from the outcome graph: the outcomes a
  // `Call` may have, on keys 1–9.
  let outcomes = [];
  try {
    const g = await api('GET', '/api/outcome-graph');
    const call = g.action_types.find((a) => a.name === 'Call');
    const ids = new Set(g.relations.filter((r) => call && r.action_type_id === call.id).map((r) => r.outcome_id));
    outcomes = g.outcomes.filter((o) => ids.has(o.id));
  } catch (_) { /* shown empty */ }
  const dispose = async (o) => {
    if (!current || !loggedIn) return;
    const at = $('#callback-at') && $('#callback-at').value;
    const answers = {};
    for (const q of document.querySelectorAll('#script [data-q]')) if (q.value !== '') answers[q.dataset.q] = q.value;
    const body = { outcome_id: o.id, notes: $('#notes').value || undefined, answers };
    if (/call ?back/i.test(o.name)) body.callback_at = at ? new Date(at).getTime() : Date.now() + 86400000;
    try {
      const r = await api('POST', '/api/console/campaigns/' + loggedIn + '/disposition', body);
      clearInterval(wrapTimer); wrap.textContent = '';
      card.replaceChildren(el('p', { class: 'ok', id: 'disposed', 'data-lead-state': r.lead_state, 'data-activity': r.activity_id ?? '' }, t('disposed') + ': ' + o.name + ' · ' + t('lead') + ' ' + r.lead_state + (r.points ? ' · +' + r.points + ' ' + t('points') : '')));
      localStorage.removeItem('centralino.notes.agent'); $('#notes').value = '';
      localStorage.removeItem('centralino.draft.' + current.call); sessionStorage.removeItem('centralino.card');
      current = null;
      // Ready again: in preview mode the next card comes with the state.
      try { showNow(await action('state')); } catch (_) { /* shown by the socket */ }
    } catch (e) { msg.textContent = e.message; }
  };
  // The campaign's script: its questions, answered during the call and
  // sent with the disposition.
  const script = () => {
    const c = campaigns.find((x) => x.id === loggedIn);
    const qs = (c && c.config.script) || [];
    if (!qs.length) return null;
    return el('div', { id: 'script' }, el('h2', {}, t('script')), qs.flatMap((q) => {
      const id = 'q-' + q.key;
      const input = q.kind === 'yesno' ? el('select', { id, 'data-q': q.key }, el('option', { value: '' }, '—'), el('option', { value: 'yes' }, t('yes')), el('option', { value: 'no' }, t('no')))
        : q.kind === 'choice' ? el('select', { id, 'data-q': q.key }, el('option', { value: '' }, '—'), q.choices.map((ch) => el('option', { value: ch }, ch)))
          : el('input', { id, 'data-q': q.key, type: q.kind === 'number' ? 'number' : 'text' });
      return [el('label', { for: id }, q.text), input];
    }));
  };
  // The form's unsaved input (script answers, callback time) is a draft kept
  // in localStorage under the call's id until the disposition is booked, so
  // a dropped socket or a reload of the page loses none of it.
  const form = (call) => {
    const f = el('div', { id: 'dispo' }, script(), el('h2', {}, t('outcome')),
      el('div', { class: 'row' }, outcomes.map((o, i) => el('button', { class: 'secondary dispo', type: 'button', 'data-outcome': o.id, onclick: () => dispose(o) }, (i + 1) + ' · ' + o.name))),
      el('label', { for: 'callback-at' }, t('callbackAt')), el('input', { id: 'callback-at', type: 'datetime-local', 'data-draft': 'callback_at' }));
    const k = 'centralino.draft.' + call;
    let d = {};
    try { d = JSON.parse(localStorage.getItem(k) || '{}') || {}; } catch (_) { d = {}; }
    const fields = () => f.querySelectorAll('[data-q], [data-draft]');
    const name = (x) => (x.dataset.q ? 'q.' + x.dataset.q : x.dataset.draft);
    for (const x of fields()) if (typeof d[name(x)] === 'string') x.value = d[name(x)];
    const keep = () => { const o = {}; for (const x of fields()) if (x.value !== '') o[name(x)] = x.value; localStorage.setItem(k, JSON.stringify(o)); };
    f.addEventListener('input', keep); f.addEventListener('change', keep);
    return f;
  };

  handlers.agent = (ev) => { if (ev.user === ME.id) show(ev.state); };
  handlers.connected = (ev) => {
    if (ev.user !== ME.id) return;
    current = ev;
    preview.replaceChildren();
    clearInterval(wrapTimer); wrap.textContent = '';
    show('on_call');
    const head = el('div', { class: 'card live', id: 'call-' + ev.call, 'data-call': ev.call }, el('div', { class: 'muted' }, t('connected') + ' · ', phoneLink(ev.number), ' · ' + when(ev.at)));
    card.replaceChildren(head);
    if (!ev.parties.length) head.append(el('div', { class: 'name party-name' }, t('unknown')));
    for (const p of ev.parties.slice(0, 1)) {
      head.append(el('div', { class: 'party', 'data-party': p.id }, el('div', { class: 'name party-name' }, p.name),
        el('div', {}, t('stage') + ': ' + p.stage + ' · ' + t('city') + ': ' + (p.city || '—'))));
      const calls = el('div', { id: 'card-calls' }), hist = el('div', { id: 'card-history' });
      card.append(el('h2', {}, t('calls')), calls, el('h2', {}, t('history')), hist);
      api('GET', '/api/parties/' + p.id + '/calls').then((c) => calls.append(table([[t('when'), (x) => when(x.started_at)], [t('direction'), (x) => x.direction], [t('outcome'), (x) => x.outcome]], c.slice(0, 5)))).catch(() => {});
      api('GET', '/api/parties/' + p.id + '/history').then((h) => hist.append(table([[t('when'), (x) => when(x.at)], [t('action'), (x) => x.action]], h.slice(0, 5)))).catch(() => {});
    }
    card.append(form(ev.call));
    sessionStorage.setItem('centralino.card', JSON.stringify(ev));
  };
  handlers.call_ended = (ev) => {
    if (ev.user !== ME.id) return;
    show('wrap_up');
    const t0 = Date.now();
    clearInterval(wrapTimer);
    wrapTimer = setInterval(() => { wrap.textContent = t('wrapUp') + ' ' + Math.round((Date.now() - t0) / 1000) + ' s'; }, 500);
  };
  // Keyboard: r ready, p pause, h hang up, m mute, 1–9 an outcome (not while typing).
  document.addEventListener('keydown', (e) => {
    if (e.target.closest && e.target.closest('input, textarea, select') || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === 'd' && $('#preview-dial')) $('#preview-dial').click(); else if (e.key === 's' && $('#preview-skip')) $('#preview-skip').click();
    else if (e.key === 'r') ready(); else if (e.key === 'p') pause(); else if (e.key === 'h') hang.click(); else if (e.key === 'm') mute.click();
    else if (/^[1-9]$/.test(e.key) && current && outcomes[Number(e.key) - 1]) dispose(outcomes[Number(e.key) - 1]);
  });

  const agenda = el('div', { id: 'agenda' }), board = el('div', { id: 'board' });
  $('#main').append(
    panel(t('agent'), el('label', { for: 'campaign' }, t('campaign')), camp,
      el('div', { class: 'row' }, st, el('button', { class: 'primary', id: 'ready', onclick: ready }, t('ready') + ' (r)'),
        el('button', { class: 'secondary', id: 'pause', onclick: pause }, t('pause') + ' (p)'), leave), el('label', {}, t('reason')), reason,
      el('div', { class: 'row phone' }, phoneState, mute, holdBtn, hang, audio), keypad, wrap, msg, notesBox('agent')),
    panel(t('card'), preview, card),
    panel(t('agenda'), agenda), panel(t('leaderboard'), board));
  try {
    campaigns = await api('GET', '/api/dialer/campaigns');
    for (const c of campaigns) camp.append(el('option', { value: c.id }, c.config.name + (c.running ? '' : ' (' + t('stopped') + ')')));
  } catch (_) { /* no dialer */ }
  // A reload with a card open (not yet booked) shows that card again, with
  // its notes and form drafts, and the agent's state read from the dialer;
  // the disposition is booked on that campaign as before the reload.
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem('centralino.card') || 'null'); } catch (_) { saved = null; }
  if (saved && saved.user === ME.id && saved.campaign && campaigns.some((c) => c.id === saved.campaign)) {
    camp.value = String(saved.campaign);
    loggedIn = saved.campaign;
    handlers.connected(saved);
    try { show((await action('state')).state); } catch (_) { /* the socket tells */ }
  }
  if (!campaigns.length) { const s = localStorage.getItem('centralino.agentState'); show(s === 'ready' ? 'ready' : s === 'paused' ? 'paused' : 'logged_out'); }
  try {
    const a = await api('GET', '/api/activities?period=today&limit=20');
    agenda.append(table([[t('due'), (x) => when(x.due_at)], [t('kind'), (x) => x.kind], ['#', (x) => x.party_id]], a.items));
  } catch (e) { agenda.append(el('p', { class: 'muted' }, e.message)); }
  leaderboard(board);
}

async function leaderboard(box) {
  try {
    const l = await api('GET', '/api/leaderboard');
    box.append(table([['', (x) => x.display_name || x.username], [t('points'), (x) => x.points]], l));
  } catch (e) { box.append(el('p', { class: 'muted' }, e.message)); }
}

// ---- supervisor wallboard
async function wallboard() {
  const chart = el('div', { id: 'chart' }), board = el('div', { id: 'board' });
  const ringing = el('div', { class: 'big', id: 'ringing' }, '0');
  const totals = el('div', { class: 'muted', id: 'totals' });
  const agents = el('div', { id: 'agents' }, el('p', { class: 'muted' }, t('none')));
  const dialer = el('div', { id: 'dialer' });
  $('#main').append(panel(t('agentsLive'), agents), panel(t('dialerLive'), dialer), panel(t('callsPerHour'), chart, totals), panel(t('ringingNow'), ringing), panel(t('leaderboard'), board));
  // Agents live, from the desk events on the socket.
  const rows = new Map();
  const drawAgents = () => {
    agents.replaceChildren(table([['', (x) => x.name], [t('state'), (x) => el('span', { class: 'state ' + x.state, 'data-agent': x.user, 'data-state': x.state }, t(x.state))],
      [t('call'), (x) => x.number || ''], [t('occupancy'), (x) => el('span', { class: 'occ', 'data-agent': x.user }, occupancy(x))], [t('when'), (x) => when(x.at)]], [...rows.values()]));
  };
  // Talk occupancy since this wallboard first saw the agent: time on calls
  // over time logged in (not paused, not logged out).
  const occupancy = (x) => {
    const now = Date.now();
    const talk = x.talk + (x.state === 'on_call' ? now - x.since : 0);
    const present = x.present + (['ready', 'on_call', 'wrap_up', 'reserved'].includes(x.state) ? now - x.since : 0);
    return present > 0 ? Math.round((100 * talk) / present) + ' %' : '—';
  };
  const upd = (user, patch) => {
    const now = Date.now();
    const x = rows.get(user) || { user, name: '#' + user, state: 'logged_out', talk: 0, present: 0, since: now };
    if (x.state === 'on_call') x.talk += now - x.since;
    if (['ready', 'on_call', 'wrap_up', 'reserved'].includes(x.state)) x.present += now - x.since;
    rows.set(user, Object.assign(x, patch, { since: now }));
    drawAgents();
  };
  setInterval(() => { for (const s of document.querySelectorAll('#agents .occ')) { const x = rows.get(Number(s.dataset.agent)); if (x) s.textContent = occupancy(x); } }, 1000);
  handlers.agent = (ev) => upd(ev.user, { name: ev.username, state: ev.state || 'logged_out', at: ev.at, number: '' });
  handlers.connected = (ev) => upd(ev.user, { state: 'on_call', number: ev.number + (ev.parties[0] ? ' · ' + ev.parties[0].name : ''), at: ev.at });
  handlers.call_ended = (ev) => upd(ev.user, { state: 'wrap_up', at: ev.at });
  // The running campaigns' live numbers (dial level, abandon rate, ringing).
  const pollDialer = async () => {
    try {
      const camps = (await api('GET', '/api/dialer/campaigns')).filter((c) => c.running);
      const stats = await Promise.all(camps.map((c) => api('GET', '/api/dialer/campaigns/' + c.id + '/stats').then((s) => [c, s])));
      const pct = (x) => (100 * x).toFixed(1) + ' %';
      dialer.replaceChildren(table([[t('campaign'), ([c]) => c.config.name], [t('ringingNow'), ([, s]) => (s.live ? s.live.ringing : 0)],
        [t('dialLevel'), ([, s]) => (s.live ? s.live.dial_level.toFixed(2) : '—')], [t('abandonLive'), ([, s]) => (s.live ? pct(s.live.abandon_rate) : '—')],
        [t('abandonStored'), ([, s]) => pct(s.store.abandon_rate)], [t('bridgeP99'), ([, s]) => (s.live ? s.live.bridge_p99_ms + ' ms' : '—')]], stats));
      dialer.dataset.ready = '1';
    } catch (e) { dialer.replaceChildren(el('p', { class: 'muted' }, e.message)); }
  };
  pollDialer();
  setInterval(pollDialer, 2000);
  let live = 0;
  handlers.pop = () => { live += 1; ringing.textContent = String(live); setTimeout(() => { live = Math.max(0, live - 1); ringing.textContent = String(live); }, 20000); };
  leaderboard(board);
  try {
    const hours = await api('GET', '/api/console/calls-per-hour');
    const xs = hours.map((h) => h.at / 1000);
    const sum = (k) => hours.reduce((a, h) => a + h[k], 0);
    totals.textContent = t('inbound') + ' ' + sum('inbound') + ' · ' + t('outbound') + ' ' + sum('outbound') + ' · ' + t('answered') + ' ' + sum('answered');
    const bars = uPlot.paths.bars({ size: [0.6, 40] });
    new uPlot({ width: Math.max(340, chart.clientWidth || 600), height: 260, series: [{},
      { label: t('inbound'), stroke: '#1f6feb', fill: 'rgba(31,111,235,.35)', paths: bars },
      { label: t('outbound'), stroke: '#8250df', fill: 'rgba(130,80,223,.25)', paths: bars },
      { label: t('answered'), stroke: '#1a7f37', width: 2 }],
    axes: [{}, { label: t('calls') }] }, [xs, hours.map((h) => h.inbound), hours.map((h) => h.outbound), hours.map((h) => h.answered)], chart);
    chart.dataset.ready = '1';
  } catch (e) { chart.append(el('p', { class: 'error' }, e.message)); }
}

// ---- marketer desk: list builder with a live count
async function marketerDesk() {
  const kind = el('select', { id: 'f-kind' }, el('option', { value: '' }, t('any')), el('option', { value: 'person' }, t('person')), el('option', { value: 'company' }, t('company')));
  const stages = ['lead', 'suspect', 'prospect', 'customer'].map((s) => el('input', { type: 'checkbox', value: s, class: 'f-stage' }));
  const charc = el('input', { id: 'f-char', placeholder: 'interest=solar' });
  const consent = el('select', { id: 'f-consent' }, el('option', { value: '' }, '—'), ['phone', 'email', 'sms'].map((c) => el('option', { value: c }, c)));
  const count = el('div', { class: 'big', id: 'count' }, '…');
  const name = el('input', { id: 'list-name' });
  const msg = el('span', { class: 'muted', id: 'list-msg' });
  const filter = () => {
    const f = {};
    if (kind.value) f.kind = kind.value;
    const st = stages.filter((s) => s.checked).map((s) => s.value);
    if (st.length) f.stages = st;
    const [k, v] = charc.value.split('=');
    if (k && v) f.characteristics = [{ key: k.trim(), value: v.trim() }];
    if (consent.value) f.consents = [{ channel: consent.value, granted: true }];
    return f;
  };
  let timer;
  const refresh = () => { clearTimeout(timer); timer = setTimeout(async () => {
    try { count.textContent = String((await api('POST', '/api/lists/preview', filter())).count); } catch (e) { count.textContent = '—'; msg.textContent = e.message; }
  }, 250); };
  for (const i of [kind, charc, consent, ...stages]) i.addEventListener('input', refresh);
  const save = el('button', { class: 'primary', id: 'save-list', type: 'button' }, t('saveList'));
  save.addEventListener('click', async () => {
    try { const l = await api('POST', '/api/lists', { name: name.value || 'list', kind: 'dynamic', filter: filter() }); msg.textContent = t('saved') + ' #' + l.id; } catch (e) { msg.textContent = e.message; }
  });
  $('#main').append(panel(t('listBuilder'), el('label', {}, t('kind')), kind, el('label', {}, t('stages')),
    el('div', { class: 'chips' }, stages.map((s) => el('label', {}, s, ' ' + s.value))), el('label', {}, t('characteristic')), charc,
    el('label', {}, t('consent')), consent, el('label', {}, t('listName')), name, save, msg), panel(t('matching'), count), monitorPanel());
  refresh();
}

// ---- the message monitor: a campaign message's funnel, human vs machine
// opens, clicks per link and bounces by reason, as uPlot bar charts.
function bars(box, labels, series, id) {
  const xs = labels.map((_, i) => i);
  const paths = uPlot.paths.bars({ size: [0.7 / series.length, 60], align: 0 });
  const chart = el('div', { class: 'chart', id });
  box.append(chart);
  new uPlot({ width: Math.max(320, box.clientWidth || 480), height: 260, scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: s.color + '66', paths }))],
    axes: [{ values: (_, splits) => splits.map((i) => (Number.isInteger(i) ? labels[i] || '' : '')), splits: () => xs, rotate: -35, size: 80 }, {}] },
  [xs, ...series.map((s) => s.values)], chart);
}
function monitorPanel() {
  const input = el('input', { id: 'monitor-id', type: 'number', min: 1, value: localStorage.getItem('centralino.monitor') || '' });
  const out = el('div', { id: 'monitor' });
  const show = async () => {
    out.replaceChildren(); delete out.dataset.ready;
    if (!input.value) return;
    localStorage.setItem('centralino.monitor', input.value);
    try {
      const r = await api('GET', '/api/campaign-messages/' + Number(input.value) + '/monitor');
      const sum = (a, k) => a.reduce((n, x) => n + x[k], 0);
      const funnel = [[t('recipients'), r.recipients], [t('queued'), r.queued], [t('sentN'), r.sent], [t('openedHuman'), r.opens.unique_human], [t('openedMachine'), r.opens.unique_machine],
        [t('clicked'), sum(r.clicks, 'unique_human')], [t('bounced'), sum(r.bounced, 'count')], [t('unsubscribed'), r.unsubscribed], [t('complained'), r.complained]];
      out.append(el('p', { class: 'muted', id: 'monitor-totals' }, funnel.map(([k, v]) => k + ' ' + v).join(' · ')));
      bars(out, funnel.map((f) => f[0]), [{ label: t('recipientsN'), color: '#1f6feb', values: funnel.map((f) => f[1]) }], 'chart-funnel');
      if (r.clicks.length) bars(out, r.clicks.map((c) => '#' + c.index), [{ label: t('human'), color: '#1a7f37', values: r.clicks.map((c) => c.unique_human) }, { label: t('machine'), color: '#9a6700', values: r.clicks.map((c) => c.machine) }], 'chart-links');
      if (r.bounced.length) bars(out, r.bounced.map((b) => b.reason + (b.hard ? ' (hard)' : '')), [{ label: t('bounced'), color: '#cf222e', values: r.bounced.map((b) => b.count) }], 'chart-bounces');
      out.dataset.ready = '1';
    } catch (e) { out.append(el('p', { class: 'muted' }, e.message)); }
  };
  input.addEventListener('change', show);
  show();
  return panel(t('monitor'), el('label', { for: 'monitor-id' }, t('messageNo')), input, out);
}

async function main() {
  document.title = 'centralino — ' + t(page);
  if (page === 'login') { header(null); loginPage(); return; }
  let me;
  try { me = await api('GET', '/api/me'); } catch (_) { return; }
  ME = me;
  header(me);
  connect();
  ({ support: supportDesk, agent: agentDesk, wallboard, marketer: marketerDesk })[page]();
}
main();
