// End-to-end suite: real players decrypt and play media through a real berth.
//
// Makes test media at run time (ffmpeg testsrc2 + sine, packaged by the
// shaka-packager binary and by ffmpeg's HLS muxer), starts two berth
// instances (one honest, one with deliberately wrong keys), serves the player
// page from a second local origin so CORS is real, and drives Shaka Player,
// dash.js, hls.js and video.js in headless Debian Chromium with
// playwright-core, plus ffmpeg as a non-browser client. The page's origin and
// the honest berth's license API speak HTTPS (one throwaway certificate for 127.0.0.1, trusted by
// Chromium through its SPKI hash only), as with a portal served over HTTPS;
// the tampered berth speaks plain HTTP. Then checks berth's counts against the
// license exchanges the players really made.
//
// Usage: node run.mjs   (BERTH_BIN overrides ../../target/debug/berth)

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'out');
const berthBin = process.env.BERTH_BIN || path.resolve(here, '../../target/debug/berth');
const packagerBin = path.join(here, 'node_modules/shaka-packager/bin/packager-linux-x64');
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const started = Date.now();
const failures = [];

function log(...args) {
  console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args);
}

function check(condition, message) {
  if (condition) {
    log('ok  ', message);
  } else {
    log('FAIL', message);
    failures.push(message);
  }
}

// The environment without BERTH_* settings, so that no outside config leaks in.
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_')));
}

function run(cmd, args, { input, allowFail = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 && !allowFail) {
        reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      } else {
        resolve({ code, stdout, stderr });
      }
    });
    if (input) child.stdin.end(input);
    else child.stdin.end();
  });
}

const hex = (buf) => Buffer.from(buf).toString('hex');
const uuid = (h) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;

function newKey(label = '') {
  const kid = hex(crypto.randomBytes(16));
  return { kid, uuid: uuid(kid), key: hex(crypto.randomBytes(16)), label };
}

// --- berth -------------------------------------------------------------------

// Every `berth serve` this suite started and has not stopped.
const serving = new Set();

class Berth {
  // tls: { cert, key } files for the license API, or none for plain HTTP.
  constructor(name, tls = null) {
    this.name = name;
    this.tls = tls;
    this.dataDir = path.join(out, name);
    this.lines = [];
  }

  cli(args) {
    return run(berthBin, [...args, '--data-dir', this.dataDir]);
  }

  async init(vesselType) {
    const { stdout } = await this.cli(['init', '--installation-id', this.name, '--vessel-type', vesselType, '--vessel-name', `e2e ${this.name}`, '--json']);
    this.identity = JSON.parse(stdout);
  }

  // Dates the installation to the start of last month, as if it had been set
  // up then, so that last month has a report to export (berth refuses a first
  // report for a month before the installation's first), and turns automatic
  // export off so that the crew UI's Export button is what exports it.
  async installedLastMonth(origin) {
    const now = new Date();
    const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)).toISOString();
    await run('sqlite3', [path.join(this.dataDir, 'berth.db'), `UPDATE installation SET created_at = '${start}'`]);
    this.config = path.join(out, `${this.name}.toml`);
    fs.writeFileSync(this.config, `[reports]\nauto_export = false\n[license]\nallowed_origins = ["${origin}"]\n`);
  }

  async importKeys(keys) {
    const file = path.join(out, `${this.name}-keys.json`);
    fs.writeFileSync(file, JSON.stringify({ keys: keys.map((k) => ({ kid: k.uuid, key: k.key, label: k.label || '' })) }));
    await this.cli(['keys', 'import', file]);
  }

  async mint(kids, userId, extra = []) {
    const args = ['token', 'mint', '--user-id', userId, '--valid-for', '1h', ...extra];
    for (const k of kids) args.push('--kid', k.uuid);
    const { stdout } = await this.cli(args);
    return stdout.trim();
  }

  start() {
    return new Promise((resolve, reject) => {
      const config = this.config ? ['--config', this.config] : [];
      const env = cleanEnv();
      if (this.tls) Object.assign(env, { BERTH_LICENSE_TLS_CERT: this.tls.cert, BERTH_LICENSE_TLS_KEY: this.tls.key });
      const proc = spawn(berthBin, ['serve', '--data-dir', this.dataDir, ...config, '--license-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], { env });
      this.proc = proc;
      serving.add(proc);
      proc.on('exit', () => serving.delete(proc));
      let stdout = '';
      this.proc.stdout.on('data', (d) => {
        stdout += d;
        const m = stdout.match(/license API listening on (https?:\/\/[0-9.:]+)/);
        const a = stdout.match(/admin UI listening on (http:\/\/[0-9.:]+)/);
        if (m && a && !this.url) {
          this.url = m[1];
          this.adminUrl = a[1];
          resolve();
        }
      });
      let partial = '';
      this.proc.stderr.on('data', (d) => {
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop();
        this.lines.push(...lines);
      });
      this.proc.on('exit', (code) => {
        if (!this.url) reject(new Error(`berth ${this.name} exited ${code}: ${this.lines.join('\n')}`));
      });
    });
  }

  licenseLines() {
    return this.lines.filter((l) => l.includes('berth::license'));
  }

  okLines() {
    return this.licenseLines().filter((l) => l.includes('outcome="ok"'));
  }

  // Answers that delivered a key already delivered to that token: not licenses.
  repeatLines() {
    return this.okLines().filter((l) => l.includes('repeat=true'));
  }

  async stats() {
    const { stdout } = await this.cli(['stats', '--json']);
    return JSON.parse(stdout).counts;
  }

  async rows() {
    const { stdout } = await this.cli(['log', 'verify', '--json']);
    return JSON.parse(stdout).rows;
  }

  async stop() {
    if (!this.proc) return;
    const exited = new Promise((r) => this.proc.on('exit', r));
    this.proc.kill('SIGTERM');
    await exited;
  }
}

// A token signed here with a secret berth does not have (the wrong-token case).
function foreignToken(comKeyId, kids) {
  const b64 = (s) => Buffer.from(s).toString('base64url');
  const header = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64(JSON.stringify({
    version: 1,
    com_key_id: comKeyId,
    message: { type: 'entitlement_message', version: 2, content_keys_source: { inline: kids.map((k) => ({ id: k.uuid })) } },
  }));
  const sig = crypto.createHmac('sha256', crypto.randomBytes(32)).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

// --- media -------------------------------------------------------------------

async function makeMedia(keys, berth) {
  const media = path.join(out, 'media');
  fs.mkdirSync(media, { recursive: true });
  const clear = path.join(media, 'clear.mp4');
  await run('ffmpeg', ['-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '8', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-profile:v', 'main',
    '-g', '50', '-keyint_min', '50', '-sc_threshold', '0',
    '-c:a', 'aac', '-b:a', '64k', '-shortest', clear]);

  const dash = async (scheme, key) => {
    const dir = path.join(media, `dash_${scheme}`);
    fs.mkdirSync(dir, { recursive: true });
    await run(packagerBin, [
      `in=${clear},stream=audio,output=${dir}/audio.mp4`,
      `in=${clear},stream=video,output=${dir}/video.mp4`,
      '--enable_raw_key_encryption', '--keys', `label=:key_id=${key.kid}:key=${key.key}`,
      '--protection_scheme', scheme, '--protection_systems', 'CommonSystem', '--clear_lead', '0',
      '--mpd_output', `${dir}/manifest.mpd`]);
  };
  await dash('cenc', keys.cenc);
  await dash('cbcs', keys.cbcs);
  // dash.js 5.2.1 hands the W3C common PSSH to the CDM as 'keyids' init data and
  // fails; give it the DASH-IF IOP 4.1 (7.6.2.4) ClearKey signalling instead,
  // from which it builds 'keyids' init data out of cenc:default_KID.
  const mpd = fs.readFileSync(path.join(media, 'dash_cenc/manifest.mpd'), 'utf8');
  const dashif = mpd.replace(
    /<ContentProtection schemeIdUri="urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b">[\s\S]*?<\/ContentProtection>/g,
    '<ContentProtection schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" value="ClearKey1.0"/>');
  check(dashif !== mpd, 'made the DASH-IF ClearKey-signalled manifest for dash.js');
  fs.writeFileSync(path.join(media, 'dash_cenc/manifest-dashif.mpd'), dashif);

  // HLS fMP4 cbcs: the key URI is berth's /hls/key with a token in the query.
  const hlsDir = path.join(media, 'hls_cbcs');
  fs.mkdirSync(hlsDir, { recursive: true });
  const hlsToken = await berth.mint([keys.hls], 'seat-hls-cbcs');
  await run(packagerBin, [
    `in=${clear},stream=audio,init_segment=${hlsDir}/audio_init.mp4,segment_template=${hlsDir}/audio_$Number$.m4s,playlist_name=audio.m3u8,hls_group_id=audio,hls_name=ENGLISH`,
    `in=${clear},stream=video,init_segment=${hlsDir}/video_init.mp4,segment_template=${hlsDir}/video_$Number$.m4s,playlist_name=video.m3u8`,
    '--enable_raw_key_encryption', '--keys', `label=:key_id=${keys.hls.kid}:key=${keys.hls.key}`,
    '--protection_scheme', 'cbcs', '--clear_lead', '0',
    '--hls_key_uri', `${berth.url}/hls/key/${keys.hls.uuid}?token=${hlsToken}`,
    '--hls_master_playlist_output', `${hlsDir}/master.m3u8`]);

  // HLS TS AES-128 by ffmpeg, key URI pointing at berth.
  const aesDir = path.join(media, 'aes');
  fs.mkdirSync(aesDir, { recursive: true });
  const aesToken = await berth.mint([keys.aes], 'seat-hls-aes');
  fs.writeFileSync(path.join(aesDir, 'key.bin'), Buffer.from(keys.aes.key, 'hex'));
  fs.writeFileSync(path.join(out, 'keyinfo'), `${berth.url}/hls/key/${keys.aes.uuid}?token=${aesToken}\n${path.join(aesDir, 'key.bin')}\n`);
  await run('ffmpeg', ['-v', 'error', '-y', '-i', clear, '-c', 'copy', '-f', 'hls', '-hls_time', '2',
    '-hls_playlist_type', 'vod', '-hls_key_info_file', path.join(out, 'keyinfo'),
    '-hls_segment_filename', path.join(aesDir, 'seg%d.ts'), path.join(aesDir, 'index.m3u8')]);
  // The key must not be served next to the media.
  fs.rmSync(path.join(aesDir, 'key.bin'));
  const playlist = fs.readFileSync(path.join(aesDir, 'index.m3u8'), 'utf8');
  check(playlist.includes(`${berth.url}/hls/key/`), 'the AES-128 playlist points its key at berth');

  // A longer AES-128 stream for video.js: 21 one-second segments, one key.
  const longDir = path.join(media, 'aes_long');
  fs.mkdirSync(longDir, { recursive: true });
  const longClear = path.join(media, 'clear-21s.mp4');
  await run('ffmpeg', ['-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=48000',
    '-t', '21', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-profile:v', 'main',
    '-g', '25', '-keyint_min', '25', '-sc_threshold', '0', '-c:a', 'aac', '-b:a', '48k', '-shortest', longClear]);
  const longToken = await berth.mint([keys.vjs], 'seat-videojs');
  fs.writeFileSync(path.join(longDir, 'key.bin'), Buffer.from(keys.vjs.key, 'hex'));
  fs.writeFileSync(path.join(out, 'keyinfo-long'), `${berth.url}/hls/key/${keys.vjs.uuid}?token=${longToken}\n${path.join(longDir, 'key.bin')}\n`);
  await run('ffmpeg', ['-v', 'error', '-y', '-i', longClear, '-c', 'copy', '-f', 'hls', '-hls_time', '1',
    '-hls_playlist_type', 'vod', '-hls_key_info_file', path.join(out, 'keyinfo-long'),
    '-hls_segment_filename', path.join(longDir, 'seg%d.ts'), path.join(longDir, 'index.m3u8')]);
  fs.rmSync(path.join(longDir, 'key.bin'));
  const segments = fs.readFileSync(path.join(longDir, 'index.m3u8'), 'utf8').split('\n').filter((l) => l.endsWith('.ts')).length;
  check(segments >= 20, `the video.js stream has ${segments} AES-128 segments under one key`);
  return { clear, aesDir };
}

// --- the page's origin ---------------------------------------------------------

// A throwaway certificate for 127.0.0.1, and the base64 SHA-256 of its public
// key, which is what Chromium's --ignore-certificate-errors-spki-list takes.
async function makeCertificate() {
  const cert = path.join(out, 'tls.crt');
  const key = path.join(out, 'tls.key');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=berth e2e', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  const spki = new crypto.X509Certificate(fs.readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return { cert, key, spki: crypto.createHash('sha256').update(spki).digest('base64') };
}

function startStatic(tls) {
  const routes = [
    ['/lib/shaka/', path.join(here, 'node_modules/shaka-player/dist/')],
    ['/lib/hlsjs/', path.join(here, 'node_modules/hls.js/dist/')],
    ['/lib/dashjs/', path.join(here, 'node_modules/dashjs/dist/modern/umd/')],
    ['/lib/videojs/', path.join(here, 'node_modules/video.js/dist/')],
    ['/media/', path.join(out, 'media/')],
  ];
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.mpd': 'application/dash+xml', '.m3u8': 'application/vnd.apple.mpegurl', '.mp4': 'video/mp4', '.m4s': 'video/iso.segment', '.ts': 'video/mp2t' };
  const server = https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, (req, res) => {
    const url = new URL(req.url, 'http://x');
    let file = null;
    if (url.pathname === '/player.html') file = path.join(here, 'player.html');
    for (const [prefix, dir] of routes) {
      if (url.pathname.startsWith(prefix)) {
        const candidate = path.normalize(path.join(dir, url.pathname.slice(prefix.length)));
        if (candidate.startsWith(dir)) file = candidate;
      }
    }
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const data = fs.readFileSync(file);
    const range = req.headers.range && /bytes=(\d+)-(\d*)/.exec(req.headers.range);
    const headers = { 'Content-Type': types[path.extname(file)] || 'application/octet-stream', 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-store' };
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Number(range[2]) : data.length - 1;
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${data.length}` });
      res.end(data.subarray(start, end + 1));
    } else {
      res.writeHead(200, headers);
      res.end(data);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// --- players -----------------------------------------------------------------

async function playInBrowser(browser, origin, berths, { name, player, src, berth, token, tokenIn = 'header', expect }) {
  const context = await browser.newContext({ viewport: { width: 660, height: 420 } });
  const page = await context.newPage();
  const exchanges = [];
  page.on('response', (response) => {
    const request = response.request();
    const target = berths.find((b) => response.url().startsWith(b.url));
    if (target && request.method() !== 'OPTIONS') {
      // A key fetch is told apart by its URL with the token in it, or its token header.
      const fetched = `${response.url()} ${request.headers()['x-axdrm-message'] || ''}`;
      exchanges.push({ berth: target.name, method: request.method(), status: response.status(), url: response.url().split('?')[0], fetched });
    }
  });
  const params = new URLSearchParams({ player, src: `${origin}/media/${src}`, license: berth.url, token, tokenIn });
  await page.goto(`${origin}/player.html?${params}`);
  const deadline = Date.now() + (expect === 'play' ? 25_000 : expect === 'end' ? 60_000 : 10_000);
  let state = {};
  let framesAtStart = null;
  while (Date.now() < deadline) {
    state = await page.evaluate(() => ({ ...window.berthE2E }));
    if (framesAtStart === null && state.currentTime > 0.5) framesAtStart = state.frames;
    if (state.errors.length) break;
    if (expect === 'play' && state.currentTime > 2.5) break;
    if (expect === 'end' && state.ended) break;
    await page.waitForTimeout(200);
  }
  fs.mkdirSync(path.join(out, 'screenshots'), { recursive: true });
  await page.screenshot({ path: path.join(out, 'screenshots', `${name}.png`) });
  await context.close();
  const detail = `${name}: t=${(state.currentTime || 0).toFixed(2)} frames=${state.frames} errors=${JSON.stringify(state.errors)}`;
  if (expect === 'end') {
    check(state.errors.length === 0 && state.ended && state.currentTime > 15, `${detail} plays to the end`);
  } else if (expect === 'play') {
    check(state.errors.length === 0 && state.currentTime > 2.5 && state.frames > (framesAtStart || 0) && state.frames > 0, `${detail} plays`);
  } else if (expect === 'error') {
    check(state.errors.length > 0 && !(state.currentTime > 2.5), `${detail} fails with an error`);
  } else {
    check(!(state.currentTime > 2.5 && state.errors.length === 0), `${detail} does not play`);
  }
  return exchanges;
}

// The crew's view: sign in to the admin UI in the browser, see the month's
// count match berth's stats, watch the page refresh itself, sign out.
async function crewDashboard(browser, berth, keys) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  // The console stays clean: no missing icon, stylesheet or script.
  const consoleErrors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('response', (r) => { if (r.status() === 404) consoleErrors.push(`404 ${r.url()}`); });
  await page.goto(`${berth.adminUrl}/`);
  check(page.url().endsWith('/login'), 'the admin UI asks for a sign-in first');
  await page.getByLabel('User name').fill(berth.identity.admin_user);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  check(await page.getByRole('alert').isVisible(), 'a wrong password is refused with a visible message');
  await page.getByLabel('User name').fill(berth.identity.admin_user);
  await page.getByLabel('Password').fill(berth.identity.admin_password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('#licenses');
  const stats = await berth.stats();
  const shown = Number(await page.textContent('#licenses'));
  check(shown === stats.licenses, `the dashboard shows this month's licenses (${shown} = ${stats.licenses})`);
  check((await page.textContent('#status')).trim() === 'OK', 'the dashboard shows berth healthy');
  const late = (await page.textContent('#reports-card .n.bad')).trim();
  check(/^\d{4}-\d{2}$/.test(late) && (await page.textContent('#reports-card')).includes('has ended and has no report yet'),
    `the dashboard shows last month (${late}) in red: it has ended without a report`);
  await page.waitForFunction(() => document.body.dataset.refreshed, null, { timeout: 10_000 });
  check(true, 'the dashboard refreshed itself without a reload');
  await page.screenshot({ path: path.join(out, 'screenshots', 'admin-dashboard.png'), fullPage: true });
  // Import a key file the way crew would: choose it, import.
  const extra = newKey();
  const keyFile = path.join(out, 'crew-keys.json');
  fs.writeFileSync(keyFile, JSON.stringify({ keys: [{ kid: extra.uuid, key: extra.key, label: 'crew import' }] }));
  await page.getByRole('link', { name: 'Keys', exact: true }).click();
  await page.getByLabel(/Key file/).setInputFiles(keyFile);
  await page.waitForFunction(() => document.getElementById('content').value.includes('crew import'));
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const status = await page.getByRole('status').textContent();
  check(/Imported 1 new key \(/.test(status), `the keys page imports a chosen file (${status.trim()})`);
  check(await page.getByText(extra.uuid).isVisible(), 'the imported KID is listed (and no key is shown)');
  await page.screenshot({ path: path.join(out, 'screenshots', 'admin-keys.png'), fullPage: true });
  // "Are passengers watching this film?": the keys page counts each KID's
  // licenses this month, and the count leads to those rows of the log.
  const played = page.locator('tr', { hasText: keys.cenc.uuid }).getByRole('link');
  const playedCount = Number((await played.textContent()).trim());
  const idle = (await page.locator('tr', { hasText: extra.uuid }).textContent()).includes('never');
  check(playedCount >= 2 && idle, `the keys page counts a played KID's licenses (${playedCount}) and shows a new one as never licensed`);
  // "What are passengers watching?": from the dashboard, the titles by
  // licenses this month; then one film found by a piece of its title.
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.getByRole('link', { name: 'Which titles are licensed most this month' }).click();
  await page.waitForURL(/sort=watched/);
  const byWatched = (await page.locator('table tbody tr td:nth-child(4)').allTextContents()).map((t) => Number(t.trim()));
  check(byWatched.length === 7 && byWatched.every((n, i) => i === 0 || byWatched[i - 1] >= n) && byWatched[0] >= playedCount,
    `the dashboard leads to the titles, most licensed first (${byWatched.join(', ')})`);
  await page.getByLabel('Title or KID contains').fill('coral');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForURL(/q=coral/);
  const found = await page.locator('table tbody tr').allTextContents();
  check(found.length === 1 && found[0].includes(keys.cenc.label) && found[0].includes(keys.cenc.uuid)
    && (await page.getByLabel('Order').inputValue()) === 'watched',
    `the keys page finds "${keys.cenc.label}" by "coral", keeping the order chosen`);
  await played.click();
  await page.waitForURL(new RegExp(`kid=${keys.cenc.uuid}`));
  const matchCount = (await page.textContent('#match-count')).trim();
  const kidRows = page.locator('#log tbody tr');
  const kidRowCount = await kidRows.count();
  const allKid = (await kidRows.allTextContents()).every((t) => t.includes(keys.cenc.uuid) && t.includes(keys.cenc.label));
  check(matchCount === `${playedCount} licenses match.` && kidRowCount === playedCount && allKid,
    `its count opens the license log on that KID's ${kidRowCount} rows, labelled "${keys.cenc.label}" (${matchCount})`);
  const suggested = await page.locator('#known-kids option', { hasText: keys.hls.label }).getAttribute('value');
  check(suggested === keys.hls.uuid, `the KID field suggests known KIDs by their label (${keys.hls.label})`);

  // The license log, filtered by key system, and its CSV download.
  await page.getByRole('link', { name: 'License log' }).click();
  await page.getByLabel('Key system').selectOption('hls');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForURL(/key_system=hls/);
  const counts = await berth.stats();
  const hlsRows = await page.locator('#log tbody tr').count();
  check(hlsRows === counts.by_key_system.hls && hlsRows > 0,
    `the license log filtered to hls shows its ${hlsRows} rows (stats: ${counts.by_key_system.hls})`);
  const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: /as CSV/ }).click()]);
  const csvFile = path.join(out, 'license-log-hls.csv');
  await csvDownload.saveAs(csvFile);
  const csvLines = fs.readFileSync(csvFile, 'utf8').trim().split('\r\n');
  check(csvLines[0].startsWith('seq,issued_at,key_system') && csvLines.length - 1 === hlsRows
    && csvLines.slice(1).every((l) => l.split(',')[2] === 'hls'),
    `the CSV download holds the same ${csvLines.length - 1} rows`);

  // Reports: export last month, download the zip, and verify it with the CLI,
  // while the dashboard stays open in a second tab, as on a crew screen.
  const screen = await page.context().newPage();
  await screen.goto(`${berth.adminUrl}/`);
  await page.getByRole('link', { name: 'Reports', exact: true }).click();
  await page.getByRole('button', { name: 'Export', exact: true }).click();
  const exported = await page.getByRole('status').textContent();
  check(/^Exported \d{4}-\d{2} as report 1/.test(exported.trim()), `the reports page exports last month (${exported.trim()})`);
  await screen.waitForFunction(() => !document.getElementById('reports-now').textContent.includes('has no report yet'), null, { timeout: 10_000 });
  const card = (await screen.textContent('#reports-now')).trim();
  check(/^\d{4}-\d{2}next: \d{4}-\d{2} when it ends/.test(card), `the open dashboard shows the export without a reload (${card})`);
  await screen.close();
  check(await page.locator('#reports td.ok').first().isVisible(), 'the exported report shows as verified');
  const next = (await page.locator('#next-report').textContent()).trim();
  check(/^Nothing to export yet: the next report is for \d{4}-\d{2}, which can be exported once that month ends.*Automatic export is off/.test(next),
    `the reports page then says when the next report can be exported (${next.slice(0, 80)}...)`);
  const [zipDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: /Download report 1/ }).click()]);
  const zipFile = path.join(out, zipDownload.suggestedFilename());
  await zipDownload.saveAs(zipFile);
  const verified = await run(berthBin, ['report', 'verify', zipFile], { allowFail: true });
  check(verified.code === 0 && /^OK /.test(verified.stdout), `the downloaded report verifies: ${verified.stdout.trim() || verified.stderr.trim()}`);
  await page.screenshot({ path: path.join(out, 'screenshots', 'admin-reports.png'), fullPage: true });

  // Keyboard: the first Tab lands on the navigation, Enter follows it.
  await page.goto(`${berth.adminUrl}/`);
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.getAttribute('href'));
  check(focused === '/', `the first Tab focuses the navigation (${focused})`);

  // A 768-wide tablet: no page scrolls sideways.
  await page.setViewportSize({ width: 768, height: 1024 });
  for (const where of ['/', '/keys', '/log', '/reports', '/comkeys', '/users']) {
    await page.goto(`${berth.adminUrl}${where}`);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 768, `${where} fits a 768-wide tablet (${width}px)`);
  }
  await page.goto(`${berth.adminUrl}/log`);
  await page.screenshot({ path: path.join(out, 'screenshots', 'admin-log-768.png'), fullPage: true });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/login$/);
  check(page.url().endsWith('/login'), 'signing out returns to the sign-in page');
  // A wrong password is answered 401 by design; anything else is a fault.
  const faults = consoleErrors.filter((e) => !e.includes('401'));
  check(faults.length === 0, `the crew UI leaves the browser's console clean (${JSON.stringify(faults)})`);
  await context.close();
}

function frameHashes(text) {
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(',').pop().trim());
}

// --- the suite ---------------------------------------------------------------

async function main() {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  for (const [what, file] of [['berth', berthBin], ['packager', packagerBin], ['chromium', chromiumBin]]) {
    if (!fs.existsSync(file)) throw new Error(`${what} not found at ${file}`);
  }
  const keys = {
    cenc: newKey('Coral Reef (DASH cenc)'), cbcs: newKey('Night Train (DASH cbcs)'), hls: newKey('Harbour Lights (HLS cbcs)'),
    aes: newKey('Old Town (HLS AES-128)'), vjs: newKey('Long Haul (HLS AES-128, video.js)'), unused: newKey(),
  };
  const tls = await makeCertificate();
  // The page's origin first: the honest berth names it as its portal's origin
  // (credentials allowed, as dash.js sends them); the tampered one allows any.
  const server = await startStatic(tls);
  const origin = `https://127.0.0.1:${server.address().port}`;
  const honest = new Berth('honest', tls);
  await honest.init('aircraft');
  await honest.installedLastMonth(origin);
  await honest.importKeys(Object.values(keys));
  await honest.start();
  // The tampered instance hands out wrong keys for the right KIDs.
  const tampered = new Berth('tampered');
  await tampered.init('train');
  const flip = (k) => ({ ...k, key: hex(Buffer.from(k.key, 'hex').map((b) => b ^ 0x5a)) });
  await tampered.importKeys([flip(keys.cenc), flip(keys.aes)]);
  await tampered.start();
  log(`berth ${honest.url} (honest), ${tampered.url} (tampered)`);

  const { clear, aesDir } = await makeMedia(keys, honest);
  const playlist = fs.readFileSync(path.join(aesDir, 'index.m3u8'), 'utf8');
  const tamperedToken = await tampered.mint([keys.aes], 'seat-tampered');
  fs.writeFileSync(path.join(aesDir, 'tampered.m3u8'),
    playlist.replace(/URI="[^"]*"/, `URI="${tampered.url}/hls/key/${keys.aes.uuid}?token=${tamperedToken}"`));
  log('media made');

  check(honest.url.startsWith('https://') && tampered.url.startsWith('http://'),
    `the honest berth's license API speaks HTTPS (${honest.url}), the tampered one plain HTTP (${tampered.url})`);
  const browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic',
      '--autoplay-policy=no-user-gesture-required', `--ignore-certificate-errors-spki-list=${tls.spki}`],
  });
  const berths = [honest, tampered];
  const exchanges = [];
  const play = async (opts) => exchanges.push(...await playInBrowser(browser, origin, berths, opts));

  const cencToken = await honest.mint([keys.cenc], 'seat-1A');
  await play({ name: 'shaka-dash-cenc', player: 'shaka', src: 'dash_cenc/manifest.mpd', berth: honest, token: cencToken, expect: 'play' });
  const cbcsToken = await honest.mint([keys.cbcs], 'seat-1B');
  await play({ name: 'shaka-dash-cbcs', player: 'shaka', src: 'dash_cbcs/manifest.mpd', berth: honest, token: cbcsToken, expect: 'play' });
  const hlsHeaderToken = await honest.mint([keys.hls], 'seat-1C');
  await play({ name: 'shaka-hls-cbcs', player: 'shaka', src: 'hls_cbcs/master.m3u8', berth: honest, token: hlsHeaderToken, expect: 'play' });
  await play({ name: 'hlsjs-aes128', player: 'hlsjs', src: 'aes/index.m3u8', berth: honest, token: '', tokenIn: 'none', expect: 'play' });
  // video.js (VHS) fetches an AES-128 key for every segment unless told to
  // cache it: every fetch is delivered, the title counts once.
  const before = await honest.stats();
  const vjsExchanges = await playInBrowser(browser, origin, berths, { name: 'videojs-aes128-21-segments', player: 'videojs', src: 'aes_long/index.m3u8', berth: honest, token: '', tokenIn: 'none', expect: 'end' });
  exchanges.push(...vjsExchanges);
  const after = await honest.stats();
  const vjsFetches = vjsExchanges.filter((e) => e.method === 'GET' && e.status === 200).length;
  check(after.by_key_system.hls - before.by_key_system.hls === 1 && after.repeat_fetches - before.repeat_fetches === vjsFetches - 1,
    `video.js fetched the key ${vjsFetches} times and berth counted exactly 1 license (+${after.by_key_system.hls - before.by_key_system.hls}) and ${after.repeat_fetches - before.repeat_fetches} repeats`);
  const dashjsToken = await honest.mint([keys.cenc], 'seat-2A');
  await play({ name: 'dashjs-dash-cenc-bearer', player: 'dashjs', src: 'dash_cenc/manifest-dashif.mpd', berth: honest, token: dashjsToken, tokenIn: 'bearer', expect: 'play' });

  // Negative controls on the honest berth: its log must not grow.
  const rowsBefore = await honest.rows();
  await play({ name: 'shaka-wrong-token', player: 'shaka', src: 'dash_cenc/manifest.mpd', berth: honest, token: foreignToken(honest.identity.com_key_id, [keys.cenc]), expect: 'error' });
  const notEntitled = await honest.mint([keys.unused], 'seat-3A');
  await play({ name: 'shaka-not-entitled', player: 'shaka', src: 'dash_cenc/manifest.mpd', berth: honest, token: notEntitled, expect: 'error' });
  check((await honest.rows()) === rowsBefore, `a wrong token and a key that is not entitled add no log row (${rowsBefore} rows)`);
  const denials = honest.licenseLines().filter((l) => /outcome="(token_invalid|key_not_entitled)"/.test(l)).length;
  check(denials >= 2, `berth logged the denials (${denials})`);

  // Wrong keys from the tampered berth: delivered (and logged), but nothing decodes.
  const tamperedDash = await tampered.mint([keys.cenc], 'seat-4A');
  await play({ name: 'shaka-tampered-key', player: 'shaka', src: 'dash_cenc/manifest.mpd', berth: tampered, token: tamperedDash, expect: 'no-play' });
  await play({ name: 'hlsjs-tampered-key', player: 'hlsjs', src: 'aes/tampered.m3u8', berth: tampered, token: '', tokenIn: 'none', expect: 'no-play' });
  await crewDashboard(browser, honest, keys);
  await browser.close();

  // ffmpeg as a non-browser client: frame-identical to the clear source.
  const honestOkBeforeFfmpeg = honest.okLines().length;
  const clearFrames = frameHashes((await run('ffmpeg', ['-v', 'error', '-i', clear, '-map', '0:v:0', '-f', 'framemd5', '-'])).stdout);
  const hlsFrames = frameHashes((await run('ffmpeg', ['-v', 'error', '-i', `${origin}/media/aes/index.m3u8`, '-map', '0:v:0', '-f', 'framemd5', '-'])).stdout);
  check(clearFrames.length > 100 && JSON.stringify(clearFrames) === JSON.stringify(hlsFrames),
    `ffmpeg decodes the AES-128 HLS stream frame-identical to the clear source (${hlsFrames.length}/${clearFrames.length} frames)`);
  const ffmpegFetches = honest.okLines().length - honestOkBeforeFfmpeg;
  const tamperedOkBeforeFfmpeg = tampered.okLines().length;
  const tamperedRun = await run('ffmpeg', ['-v', 'error', '-i', `${origin}/media/aes/tampered.m3u8`, '-map', '0:v:0', '-f', 'framemd5', '-'], { allowFail: true });
  const tamperedFrames = frameHashes(tamperedRun.stdout);
  check(JSON.stringify(tamperedFrames.slice(0, 50)) !== JSON.stringify(clearFrames.slice(0, 50)),
    `ffmpeg with the tampered key does not reproduce the clear frames (exit ${tamperedRun.code}, ${tamperedFrames.length} frames)`);
  const tamperedFfmpegFetches = tampered.okLines().length - tamperedOkBeforeFfmpeg;
  server.close();

  // Counting: berth's stats against the exchanges the players really made.
  await new Promise((r) => setTimeout(r, 300));
  for (const berth of berths) {
    const stats = await berth.stats();
    const browserOk = exchanges.filter((e) => e.berth === berth.name && e.status === 200);
    const browserPost = browserOk.filter((e) => e.method === 'POST').length;
    const browserGets = browserOk.filter((e) => e.method === 'GET');
    const extraHls = berth === honest ? ffmpegFetches : tamperedFfmpegFetches;
    // ffmpeg fetched the keys of the playlists the browser played before it,
    // with the same tokens: the same (token, key) pairs.
    const distinctHls = new Set(browserGets.map((e) => e.fetched)).size + (browserGets.length === 0 && extraHls > 0 ? 1 : 0);
    const okLines = berth.okLines().length;
    const repeats = berth.repeatLines().length;
    log(`${berth.name}: stats ${JSON.stringify({ licenses: stats.licenses, ...stats.by_key_system, users: stats.active_users, repeats: stats.repeat_fetches })}; browser 200s POST=${browserPost} GET=${browserGets.length}; ffmpeg key fetches=${extraHls}; berth ok lines=${okLines} (repeats ${repeats})`);
    check(stats.licenses === okLines - repeats, `${berth.name}: stats count every license berth answered 200 for (${stats.licenses} = ${okLines} - ${repeats} repeats)`);
    check(stats.repeat_fetches === repeats, `${berth.name}: every repeated key fetch is counted as a repeat (${stats.repeat_fetches} = ${repeats})`);
    check(stats.by_key_system.clearkey === browserPost, `${berth.name}: one clearkey license per successful license exchange the browser saw (${stats.by_key_system.clearkey} = ${browserPost})`);
    check(stats.by_key_system.hls === distinctHls && stats.by_key_system.hls + stats.repeat_fetches === browserGets.length + extraHls,
      `${berth.name}: one hls license per token and key, every other fetch a repeat (${stats.by_key_system.hls} = ${distinctHls}; ${stats.by_key_system.hls} + ${stats.repeat_fetches} = ${browserGets.length} + ${extraHls})`);
    check((await berth.rows()) === stats.licenses, `${berth.name}: the log chain verifies and holds exactly the counted rows`);
  }
  const honestStats = await honest.stats();
  check(honestStats.licenses >= 6, `the honest berth delivered licenses to every player (${honestStats.licenses})`);

  await honest.stop();
  await tampered.stop();
  const seconds = (Date.now() - started) / 1000;
  log(`finished in ${seconds.toFixed(1)} s; screenshots in ${path.join(out, 'screenshots')}`);
  check(seconds < 300, 'the suite finishes in under 5 minutes');
  if (failures.length) {
    console.error(`\n${failures.length} e2e check(s) failed:\n - ${failures.join('\n - ')}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error('e2e suite crashed:', e);
  // A crash must not leave berth servers running behind it.
  for (const proc of serving) proc.kill('SIGKILL');
  process.exit(1);
});
