// Browser scenarios for the web console, in headless Chromium driven by
// playwright-core (scripts/test.sh runs this after `cargo test`).
// Starts `centralino demo` on loopback with a throwaway database and SIP on
// a free port (trunk 127.0.0.1), then: a support rep's card pops while a
// sipp call to a DID is still ringing; a party named <script> renders as
// text; the event socket refuses an unauthenticated upgrade; the wallboard
// draws its chart; a screenshot of each desk goes to docs/screens/.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import dgram from 'node:dgram';
import http from 'node:http';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const bin = process.env.CENTRALINO_BIN || join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'debug/centralino');
const screens = join(root, 'docs/screens');
const scenario = join(root, 'web/tests/fixtures/caller_unanswered.xml');
const carrierXml = join(root, 'sip/scenarios/carrier_answer.xml');
mkdirSync(screens, { recursive: true });
const tmp = mkdtempSync(join(tmpdir(), 'centralino-browser-'));
const children = [];

const freeTcp = () => new Promise((ok, no) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); }); s.on('error', no); });
const freeUdp = () => new Promise((ok, no) => { const s = dgram.createSocket('udp4'); s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); }); s.on('error', no); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer(extra = ['--no-carrier']) {
  const [httpPort, sipPort] = [await freeTcp(), await freeUdp()];
  const name = extra.length ? 'demo' : 'demo-carrier';
  const cfg = join(tmp, name + '.toml');
  writeFileSync(cfg, `http = "127.0.0.1:${httpPort}"\nsip = "127.0.0.1:${sipPort}"\ndatabase_url = "${join(tmp, name + '.db')}"\ntrunks = ["127.0.0.1"]\ninbound_ring_secs = 8\n`);
  const p = spawn(bin, ['--config', cfg, 'demo', '--parties', '60', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  for (let i = 0; i < 600; i++) {
    if (out.includes('centralino demo on http://')) return { base: `http://127.0.0.1:${httpPort}`, sip: `127.0.0.1:${sipPort}`, log: () => out };
    if (p.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error('centralino demo did not start:\n' + out);
}

// A carrier (sipp UAS) that answers one call and echoes its RTP.
function sippCarrier() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const p = spawn('sipp', ['-sf', carrierXml, '-i', '127.0.0.1', '-p', String(port), '-mi', '127.0.0.1', '-mp', String(port + 2), '-rtp_echo',
    '-cp', String(port + 1), '-m', '1', '-timeout', '90s', '-timeout_error', '-nostdin'], { stdio: 'ignore' });
  children.push(p);
  const done = new Promise((ok) => p.on('exit', (code) => ok(code)));
  return { proc: p, done, addr: `127.0.0.1:${port}` };
}

// A DID call from `caller` that nobody answers (the server releases it).
function sippCall(sip, caller) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const p = spawn('sipp', ['-sf', scenario, sip, '-i', '127.0.0.1', '-p', String(port), '-ci', '127.0.0.1', '-cp', String(port + 1), '-mi', '127.0.0.1',
    '-s', '0612345678', '-set', 'caller', caller, '-m', '1', '-timeout', '20s', '-timeout_error', '-nostdin'], { stdio: 'ignore' });
  children.push(p);
  const done = new Promise((ok) => p.on('exit', (code) => ok(code)));
  return { proc: p, done };
}

async function apiAs(base, user, pass) {
  const r = await fetch(base + '/api/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user, password: pass }) });
  assert.equal(r.status, 200, 'login ' + user);
  const cookie = r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const csrf = (await r.json()).csrf_token;
  return async (method, path, body) => {
    const res = await fetch(base + path, { method, headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

function unauthenticatedUpgrade(base) {
  return new Promise((ok, no) => {
    const u = new URL(base);
    const req = http.request({ host: u.hostname, port: u.port, path: '/ws', headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('response', (res) => { res.resume(); ok(res.statusCode); });
    req.on('upgrade', (_res, socket) => { socket.destroy(); ok(101); });
    req.on('error', no);
    req.end();
  });
}

async function login(page, base, user, pass) {
  await page.goto(base + '/console/login');
  await page.fill('#username', user);
  await page.fill('#password', pass);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/login')), page.click('button[type=submit]')]);
}

const results = [];
async function scenarioStep(name, f) {
  const t0 = Date.now();
  try { await f(); results.push([name, 'ok', Date.now() - t0]); console.log(`ok   ${name} (${Date.now() - t0} ms)`); }
  catch (e) { results.push([name, 'FAILED']); console.log(`FAIL ${name}\n${e.stack}`); }
}

let ctx, server;
try {
  server = await startServer();
  const admin = await apiAs(server.base, 'admin', 'admin-demo-pass');
  const carla = await admin('POST', '/api/parties', { kind: 'person', name: 'Carla Neri', stage: 'customer', city: 'Milano', phones: [{ number: '+39 347 555 0101' }] });
  await admin('POST', '/api/parties', { kind: 'person', name: '<script>alert(1)</script>', phones: [{ number: '+39 347 555 0102' }] });

  ctx = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // The softphone: fake microphone (a beep), no permission prompt, ICE on loopback.
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
    viewport: { width: 1280, height: 800 },
    locale: 'en-GB',
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  let dialogs = 0;
  page.on('dialog', (d) => { dialogs++; d.dismiss(); });

  await scenarioStep('desk pages redirect to the login page without a session', async () => {
    await page.goto(server.base + '/console/support');
    assert.match(new URL(page.url()).pathname, /\/console\/login$/);
    await page.screenshot({ path: join(screens, 'login.png') });
  });

  await scenarioStep('support rep: the caller card pops before answer with the right party', async () => {
    await login(page, server.base, 'support', 'support-demo-pass');
    await page.waitForSelector('body[data-ws=open]', { timeout: 10000 });
    const call = sippCall(server.sip, '+393475550101');
    let ended = false;
    call.done.then(() => { ended = true; });
    const card = await page.waitForSelector(`.party[data-party="${carla.id}"]`, { timeout: 10000 });
    assert.equal(ended, false, 'the card must pop while the call still rings');
    assert.equal((await card.$eval('.party-name', (e) => e.textContent)), 'Carla Neri');
    // The caller's number is a click-to-call button.
    assert.equal(await page.textContent('#pops button.c2c[data-number="+393475550101"]'), '+393475550101');
    await page.waitForTimeout(800); // let the history and calls tables fill in
    await page.screenshot({ path: join(screens, 'support.png'), fullPage: true });
    assert.equal(await call.done, 0, 'sipp call');
  });

  await scenarioStep('a party named <script> renders as text', async () => {
    const call = sippCall(server.sip, '+393475550102');
    await page.waitForFunction(() => document.querySelector('.party-name')?.textContent.includes('script'), null, { timeout: 10000 });
    assert.equal(await page.textContent('.party-name'), '<script>alert(1)</script>');
    assert.equal(await page.$$eval('#pops script', (s) => s.length), 0);
    // A click-to-call number is text too, whatever it holds.
    const evil = '<img src=x onerror=alert(2)>';
    assert.deepEqual(await page.evaluate((n) => { const b = window.centralinoPhoneLink(n); document.querySelector('#pops').append(b); return [b.tagName, b.textContent, b.dataset.number, b.querySelectorAll('*').length]; }, evil), ['BUTTON', evil, evil, 0]);
    assert.equal(dialogs, 0, 'no script ran');
    await page.screenshot({ path: join(screens, 'support-escaped.png') });
    call.proc.kill('SIGTERM');
  });

  await scenarioStep('the WebSocket rejects an unauthenticated upgrade', async () => {
    assert.equal(await unauthenticatedUpgrade(server.base), 401);
  });

  await scenarioStep('agent desk shows the agenda and goes ready', async () => {
    await login(page, server.base, 'agent1', 'agent1-demo-pass');
    await page.waitForSelector('#agenda table, #agenda p', { timeout: 10000 });
    await page.click('#ready');
    await page.waitForSelector('#agent-state.ready');
    await page.fill('#notes', 'customer asked for a callback on Monday');
    // The socket drops (closed under the page): the console says so, comes
    // back by itself with a new socket, and the notes are untouched.
    await page.waitForSelector('body[data-ws=open]', { timeout: 10000 });
    const opens = Number(await page.evaluate(() => document.body.dataset.wsOpens));
    await page.evaluate(() => window.centralinoWs.close());
    await page.waitForSelector('body[data-ws=closed]', { timeout: 5000 });
    await page.waitForSelector('#link.off');
    await page.waitForFunction((n) => document.body.dataset.ws === 'open' && Number(document.body.dataset.wsOpens) === n + 1, opens, { timeout: 20000 });
    await page.waitForSelector('#link.on');
    assert.equal(await page.inputValue('#notes'), 'customer asked for a callback on Monday', 'notes survive a dropped socket');
    await page.reload();
    assert.equal(await page.inputValue('#notes'), 'customer asked for a callback on Monday', 'notes survive a reload');
    await page.screenshot({ path: join(screens, 'agent.png'), fullPage: true });
  });

  await scenarioStep('agent: softphone, ready, a dialed lead answers, card pops, audio both ways, disposition reaches the CRM', async () => {
    const me = await page.evaluate(() => fetch('/api/me').then((r) => r.json()));
    const lead = await admin('POST', '/api/parties', { kind: 'person', name: 'Dario Verdi', stage: 'prospect', city: 'Torino', owner_id: me.id, phones: [{ number: '+39 011 555 0199' }] });
    const list = await admin('POST', '/api/lists', { name: 'browser leads', kind: 'static', party_ids: [lead.id] });
    const carrier = sippCarrier();
    const camp = await admin('POST', '/api/dialer/campaigns', { name: 'Browser campaign', trunk: carrier.addr, pacing: 'progressive', ring_timeout_s: 15,
      window: { start: '00:00', end: '23:59' }, list_ids: [list.id], script: [{ key: 'solar', text: 'Interested in solar panels?', kind: 'yesno' }] });
    await admin('POST', `/api/dialer/campaigns/${camp.id}/load`, {});
    const started = await admin('POST', `/api/dialer/campaigns/${camp.id}/start`, {});
    assert.equal(started.live, true, 'campaign task runs');
    // A supervisor watches the wallboard in a second browser profile.
    const sup = await chromium.launchPersistentContext(join(tmp, 'profile-supervisor'), { executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 }, locale: 'en-GB' });
    const wall = sup.pages()[0] || (await sup.newPage());
    wall.on('pageerror', (e) => console.log('wallboard error: ' + e.message));
    wall.on('console', (m) => { if (m.type() === 'error') console.log('wallboard console: ' + m.text()); });
    await login(wall, server.base, 'supervisor', 'supervisor-demo-pass');
    await wall.waitForSelector('body[data-ws=open]', { timeout: 10000 });
    await page.reload();
    await page.waitForSelector('body[data-ws=open]', { timeout: 10000 });
    await page.selectOption('#campaign', String(camp.id));
    await page.click('#ready');
    await page.waitForSelector('#agent-state:is([data-state=ready],[data-state=reserved],[data-state=on_call])', { timeout: 15000 });
    await page.waitForFunction(() => document.body.dataset.phone === 'connected', null, { timeout: 15000 });
    const card = await page.waitForSelector(`#card .card.live .party[data-party="${lead.id}"]`, { timeout: 20000 });
    assert.equal(await card.$eval('.party-name', (e) => e.textContent), 'Dario Verdi');
    assert.equal(await page.textContent('#card .card.live button.c2c'), '+390115550199', 'the dialled number is a click-to-call button');
    await page.waitForSelector('#agent-state[data-state=on_call]');
    // The wallboard saw the agent go ready, then the call.
    await wall.waitForSelector(`#agents [data-agent="${me.id}"][data-state=on_call]`, { timeout: 10000 });
    assert.match(await wall.textContent('#agents'), /agent1.*Dario Verdi/s);
    await wall.waitForFunction((id) => /^[1-9]\d* %$/.test(document.querySelector(`#agents .occ[data-agent="${id}"]`)?.textContent || ''), me.id, { timeout: 5000 });
    await wall.waitForSelector('#dialer[data-ready="1"] table', { timeout: 10000 });
    // Audio both ways: the browser receives the carrier's echo of its own
    // audio (getStats inbound-rtp), the server relays the browser's RTP and
    // counts RTP on the carrier's SIP leg in both directions.
    let sp = null, inbound = 0;
    for (let i = 0; i < 60; i++) {
      sp = await page.evaluate(() => fetch('/api/console/softphone').then((r) => r.json()));
      inbound = await page.evaluate(() => window.centralinoPhoneInbound());
      if (inbound > 20 && sp.call_rtp && sp.call_rtp.received > 20 && sp.call_rtp.sent > 20 && sp.from_browser > 20 && sp.to_browser > 20) break;
      await sleep(250);
    }
    assert.ok(inbound > 20, 'browser inbound-rtp packetsReceived: ' + inbound);
    assert.ok(sp.from_browser > 20 && sp.to_browser > 20, 'softphone relay counters: ' + JSON.stringify(sp));
    assert.ok(sp.call_rtp && sp.call_rtp.received > 20 && sp.call_rtp.sent > 20, 'SIP-side RTP: ' + JSON.stringify(sp));
    console.log(`     audio: browser inbound-rtp ${inbound}, from browser ${sp.from_browser}, to browser ${sp.to_browser}, SIP leg rx ${sp.call_rtp.received} tx ${sp.call_rtp.sent}`);
    await page.screenshot({ path: join(screens, 'agent-call.png'), fullPage: true });
    // Hold takes the customer off the agent's leg: nothing more reaches the
    // browser until Resume; a keypad press plays DTMF into the call.
    const toBrowser = async () => (await page.evaluate(() => fetch('/api/console/softphone').then((r) => r.json()))).to_browser;
    await page.click('#hold');
    await page.waitForSelector('#hold.on');
    await sleep(400);
    const held = await toBrowser();
    await sleep(600);
    assert.equal(await toBrowser(), held, 'no audio to the agent on hold');
    await page.click('#hold');
    await page.waitForSelector('#hold:not(.on)');
    await page.click('#keypad button[data-key="5"]');
    for (let i = 0; i < 20 && (await toBrowser()) <= held; i++) await sleep(100);
    assert.ok((await toBrowser()) > held, 'audio again after Resume');
    assert.equal(await page.textContent('#agent-msg'), '', 'hold, resume and DTMF raised no error');
    await page.keyboard.press('h');
    await page.waitForSelector('#agent-state[data-state=wrap_up]', { timeout: 10000 });
    await wall.waitForSelector(`#agents [data-agent="${me.id}"][data-state=wrap_up]`, { timeout: 10000 });
    await wall.screenshot({ path: join(screens, 'wallboard-live.png'), fullPage: true });
    await sup.close();
    assert.equal(await carrier.done, 0, 'sipp carrier saw a clean call');
    await page.fill('#notes', 'interested in the offer');
    await page.selectOption('#q-solar', 'yes');
    await page.fill('#callback-at', '2030-01-07T10:30');
    // A dropped socket in wrap-up: the console reconnects, re-reads the
    // agent's state, and the open card keeps the notes and the form input
    // (kept as a draft under the call until the disposition is booked).
    const callId = await page.$eval('#card .card.live', (e) => e.dataset.call);
    const opens = Number(await page.evaluate(() => document.body.dataset.wsOpens));
    await page.evaluate(() => { document.querySelector('#agent-state').dataset.state = 'stale'; window.centralinoWs.close(); });
    await page.waitForFunction((n) => document.body.dataset.ws === 'open' && Number(document.body.dataset.wsOpens) === n + 1, opens, { timeout: 20000 });
    await page.waitForSelector('#agent-state[data-state=wrap_up]', { timeout: 10000 });
    assert.equal(await page.inputValue('#notes'), 'interested in the offer');
    assert.equal(await page.inputValue('#q-solar'), 'yes');
    assert.equal(await page.inputValue('#callback-at'), '2030-01-07T10:30');
    assert.deepEqual(JSON.parse(await page.evaluate((c) => localStorage.getItem('centralino.draft.' + c), callId)), { 'q.solar': 'yes', callback_at: '2030-01-07T10:30' });
    // A reload of the page with the card open: the same card comes back
    // with its notes and form input, and the agent's state from the dialer.
    await page.reload();
    await page.waitForSelector(`#card .card.live[data-call="${callId}"] .party[data-party="${lead.id}"]`, { timeout: 10000 });
    await page.waitForSelector('#agent-state[data-state=wrap_up]', { timeout: 10000 });
    assert.equal(await page.inputValue('#notes'), 'interested in the offer');
    assert.equal(await page.inputValue('#q-solar'), 'yes');
    assert.equal(await page.inputValue('#callback-at'), '2030-01-07T10:30');
    await page.click('#card button.dispo:has-text("Interested")');
    const done = await page.waitForSelector('#disposed', { timeout: 10000 });
    assert.equal(await done.getAttribute('data-lead-state'), 'done');
    assert.equal(await page.evaluate((c) => localStorage.getItem('centralino.draft.' + c), callId), null, 'the draft is cleared once booked');
    const leads = await admin('GET', `/api/dialer/campaigns/${camp.id}/leads`);
    assert.equal(leads[0].state, 'done', JSON.stringify(leads));
    // The CRM: a done Call activity with the chosen outcome, and the party's
    // commercial state changed by the outcome graph.
    const graph = await admin('GET', '/api/outcome-graph');
    const interested = graph.outcomes.find((o) => o.name === 'Interested');
    const act = await admin('GET', `/api/activities/${await done.getAttribute('data-activity')}`);
    assert.equal(act.outcome_id, interested.id, JSON.stringify(act));
    assert.ok(act.done_at && act.party_id === lead.id, JSON.stringify(act));
    assert.equal(act.notes, 'interested in the offer');
    const attempts = await admin('GET', `/api/dialer/campaigns/${camp.id}/attempts`);
    const att = attempts.find((x) => x.activity_id === act.id);
    assert.ok(att && att.outcome_id === interested.id && att.agent_id === me.id && att.bridged_at, 'the call record: ' + JSON.stringify(attempts));
    const hist = await admin('GET', `/api/parties/${lead.id}/history`);
    assert.ok(hist.some((h) => h.changes && h.changes.activity_id === act.id && h.changes.commercial_state_id), 'commercial state follows the outcome: ' + JSON.stringify(hist));
    await page.screenshot({ path: join(screens, 'agent-disposed.png'), fullPage: true });
    await admin('POST', `/api/dialer/campaigns/${camp.id}/stop`, {});
  });

  await scenarioStep('agent: preview mode shows the next lead, Dial places the call and the card pops', async () => {
    const me = await page.evaluate(() => fetch('/api/me').then((r) => r.json()));
    const lead = await admin('POST', '/api/parties', { kind: 'person', name: 'Elsa Riva', stage: 'lead', city: 'Bari', owner_id: me.id, phones: [{ number: '+39 080 555 0277' }] });
    const list = await admin('POST', '/api/lists', { name: 'preview leads', kind: 'static', party_ids: [lead.id] });
    const carrier = sippCarrier();
    const camp = await admin('POST', '/api/dialer/campaigns', { name: 'Preview campaign', trunk: carrier.addr, pacing: 'preview', ring_timeout_s: 15,
      window: { start: '00:00', end: '23:59' }, list_ids: [list.id] });
    await admin('POST', `/api/dialer/campaigns/${camp.id}/load`, {});
    assert.equal((await admin('POST', `/api/dialer/campaigns/${camp.id}/start`, {})).live, true);
    await page.reload();
    await page.waitForSelector('body[data-ws=open]', { timeout: 10000 });
    await page.selectOption('#campaign', String(camp.id));
    await page.keyboard.press('r');
    await page.waitForSelector('#agent-state[data-state=reserved]', { timeout: 15000 });
    await page.waitForFunction(() => document.querySelector('#preview-card .party-name')?.textContent === 'Elsa Riva', null, { timeout: 10000 });
    await page.screenshot({ path: join(screens, 'agent-preview.png'), fullPage: true });
    await page.keyboard.press('d');
    await page.waitForSelector(`#card .card.live .party[data-party="${lead.id}"]`, { timeout: 20000 });
    assert.equal(await page.$('#preview-card'), null, 'the preview card gives way to the live card');
    await page.keyboard.press('h');
    await page.waitForSelector('#agent-state[data-state=wrap_up]', { timeout: 10000 });
    await page.click('#card button.dispo:has-text("Not interested")');
    await page.waitForSelector('#disposed', { timeout: 10000 });
    assert.equal(await carrier.done, 0, 'sipp carrier saw a clean call');
    // Leaving the campaign logs the agent out and ends the softphone leg.
    await page.click('#leave');
    await page.waitForSelector('#agent-state[data-state=logged_out]', { timeout: 10000 });
    assert.equal(await page.evaluate(() => fetch('/api/console/softphone').then((r) => r.status)), 404);
    await admin('POST', `/api/dialer/campaigns/${camp.id}/stop`, {});
  });

  await scenarioStep('supervisor wallboard renders its chart', async () => {
    await login(page, server.base, 'supervisor', 'supervisor-demo-pass');
    await page.waitForSelector('#chart[data-ready="1"] canvas', { timeout: 10000 });
    await page.waitForSelector('#board table, #board p', { timeout: 10000 });
    const totals = await page.textContent('#totals');
    assert.match(totals, /inbound [1-9]/, 'the chart counts the test calls: ' + totals);
    await page.screenshot({ path: join(screens, 'wallboard.png'), fullPage: true });
  });

  await scenarioStep('marketer: the message monitor charts a launched message', async () => {
    const mk = await apiAs(server.base, 'marketer', 'marketer-demo-pass');
    const ids = [];
    for (const n of ['Ugo Monti', 'Rita Sala', 'Pia Neri']) {
      ids.push((await admin('POST', '/api/parties', { kind: 'person', name: n, emails: [{ address: n.toLowerCase().replace(' ', '.') + '@mail.example' }],
        consents: [{ channel: 'email', granted: true, source: 'test' }] })).id);
    }
    const list = await mk('POST', '/api/lists', { name: 'monitor list', kind: 'static', party_ids: ids });
    const camp = await mk('POST', '/api/campaigns', { name: 'Autumn offer' });
    const msg = await mk('POST', `/api/campaigns/${camp.id}/messages`, { channel: 'email', list_id: list.id, subject: 'Hello {{ first_name }}', text: 'Our autumn offer' });
    const launched = await mk('POST', `/api/campaign-messages/${msg.id}/launch`, {});
    assert.equal(launched.recipients, 3, JSON.stringify(launched));
    await login(page, server.base, 'marketer', 'marketer-demo-pass');
    await page.fill('#monitor-id', String(msg.id));
    await page.dispatchEvent('#monitor-id', 'change');
    await page.waitForSelector('#monitor[data-ready="1"] #chart-funnel canvas', { timeout: 10000 });
    assert.match(await page.textContent('#monitor-totals'), /recipients 3/);
  });

  await scenarioStep('marketer list builder shows a live count', async () => {
    await login(page, server.base, 'marketer', 'marketer-demo-pass');
    await page.waitForFunction(() => /^\d+$/.test(document.querySelector('#count')?.textContent || ''), null, { timeout: 10000 });
    const all = Number(await page.textContent('#count'));
    await page.check('.f-stage[value=customer]');
    await page.waitForFunction((n) => { const c = document.querySelector('#count').textContent; return /^\d+$/.test(c) && Number(c) < n; }, all, { timeout: 10000 });
    await page.screenshot({ path: join(screens, 'marketer.png'), fullPage: true });
  });

  await scenarioStep('Italian UI text', async () => {
    await page.click('#lang');
    await page.waitForFunction(() => document.querySelector('#logout').textContent === 'Esci');
  });

  await scenarioStep('demo: with the simulated carrier, an agent goes ready and hears a call within a minute', async () => {
    const t0 = Date.now();
    const demo = await startServer([]);
    assert.match(demo.log(), /simulated carrier on 127\.0\.0\.1:\d+/);
    const agentCtx = await chromium.launchPersistentContext(join(tmp, 'profile-demo'), { executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
      viewport: { width: 1280, height: 800 }, locale: 'en-GB' });
    try {
      const p = agentCtx.pages()[0] || (await agentCtx.newPage());
      await login(p, demo.base, 'agent1', 'agent1-demo-pass');
      await p.waitForSelector('#campaign option', { state: 'attached', timeout: 10000 });
      await p.selectOption('#campaign', { label: 'Demo calls' });
      await p.keyboard.press('r');
      await p.waitForSelector('#agent-state:is([data-state=ready],[data-state=reserved],[data-state=on_call])', { timeout: 15000 });
      await p.waitForSelector('#card .card.live .party', { timeout: 60000 });
      let heard = 0;
      for (let i = 0; i < 40 && heard < 50; i++) { await sleep(250); heard = await p.evaluate(() => window.centralinoPhoneInbound()); }
      assert.ok(heard >= 50, 'the agent hears the callee: inbound-rtp ' + heard);
      console.log(`     demo: call connected and heard ${((Date.now() - t0) / 1000).toFixed(1)} s after the server started (${heard} packets)`);
      assert.ok(Date.now() - t0 < 60000);
      await p.screenshot({ path: join(screens, 'demo-agent.png'), fullPage: true });
    } finally { await agentCtx.close(); }
  });
} catch (e) {
  results.push(['setup', 'FAILED']);
  console.log('FAIL setup\n' + e.stack + (server ? '\n' + server.log() : ''));
} finally {
  if (ctx) await ctx.close().catch(() => {});
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await sleep(300);
  rmSync(tmp, { recursive: true, force: true });
}
const failed = results.filter((r) => r[1] !== 'ok');
console.log(`browser: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
