// Browser end-to-end run of the gateway: headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) with the gateway as its proxy, trusting the gateway's CA
// through a fresh NSS database under a temporary HOME — never by ignoring certificate
// errors. Started by tests/integration/browser.rs, which serves the test site as x.com,
// runs the gateway, and then checks what the site received.
//
// Environment:
//   PERMEABLE_PROXY        host:port of the gateway's proxy listener
//   PERMEABLE_CA           the gateway CA certificate (PEM)
//   PERMEABLE_SITE         the test site's origin, e.g. https://x.com
//   PERMEABLE_ARTIFACTS    where screenshots and results.json go
//   PERMEABLE_UPLOAD_FILE  a large file to upload
//   CHROMIUM               the browser binary (default /usr/bin/chromium)
//
// Exit status: 0 when every case passes, 1 otherwise (each case is reported as ok/not ok).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const proxy = need('PERMEABLE_PROXY');
const caFile = need('PERMEABLE_CA');
const site = need('PERMEABLE_SITE');
const artifacts = need('PERMEABLE_ARTIFACTS');
const uploadFile = need('PERMEABLE_UPLOAD_FILE');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--proxy-server=http://${proxy}`,
];
const LAPTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };
const TIMEOUT = 20_000;

fs.mkdirSync(artifacts, { recursive: true });
const tempDirs = [];

/** A HOME whose NSS database (what Chromium on Linux trusts) holds the gateway CA, or not. */
function homeWithNssDb(trustGatewayCa) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'permeable-e2e-home-'));
  tempDirs.push(home);
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
  if (trustGatewayCa) {
    execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'permeable', '-i', caFile]);
    const listed = execFileSync('certutil', ['-d', `sql:${db}`, '-L']).toString();
    if (!/^permeable\s+C,,\s*$/m.test(listed)) {
      throw new Error(`the gateway CA is not trusted in ${db}:\n${listed}`);
    }
  }
  return home;
}

/** Chromium with a fresh profile (Playwright passes a new --user-data-dir per launch). */
function launch(home) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: FLAGS,
    env: { ...process.env, HOME: home },
    timeout: 60_000,
  });
}

let failures = 0;
const results = { sent: {}, cases: {} };

async function check(name, page, fn) {
  const started = Date.now();
  try {
    await fn();
    results.cases[name] = 'ok';
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures += 1;
    results.cases[name] = String(e && e.message ? e.message : e);
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
    if (page) {
      const file = path.join(artifacts, `failed-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`  screenshot: ${file}`);
    }
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Type a post into the compose form and wait for the page's verdict. */
async function post(page, text) {
  await page.fill('#text', text);
  await page.click('button[type=submit]');
  await page.waitForFunction(
    () => !['idle', 'pending'].includes(document.getElementById('status').dataset.state),
    null,
    { timeout: TIMEOUT },
  );
  return {
    state: await page.getAttribute('#status', 'data-state'),
    shown: (await page.textContent('#status')).trim(),
    sent: await page.evaluate(() => window.lastSent),
  };
}

/** The page fits its viewport: no sideways scrolling. */
async function fitsWidth(page) {
  const [scroll, inner] = await page.evaluate(() => [
    document.documentElement.scrollWidth,
    window.innerWidth,
  ]);
  assert(scroll <= inner, `the page scrolls sideways (${scroll} > ${inner})`);
}

// 0. The trust comes from the NSS database: without the CA, the same navigation fails.
{
  const browser = await launch(homeWithNssDb(false));
  const page = await browser.newPage();
  await check('without the gateway CA the certificate is refused', null, async () => {
    let error = null;
    try {
      await page.goto(`${site}/`, { timeout: TIMEOUT });
    } catch (e) {
      error = String(e.message);
    }
    assert(error && /ERR_CERT_AUTHORITY_INVALID|ERR_CERT_/.test(error), `expected a certificate error, got ${error}`);
  });
  await browser.close();
}

const browser = await launch(homeWithNssDb(true));
const laptop = await browser.newContext({ viewport: LAPTOP });
const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
laptop.setDefaultTimeout(TIMEOUT);
phone.setDefaultTimeout(TIMEOUT);
const page = await laptop.newPage();

await check('the site loads through the gateway over HTTP/2', page, async () => {
  const resp = await page.goto(`${site}/`);
  assert(resp && resp.status() === 200, `status ${resp && resp.status()}`);
  const protocol = await page.evaluate(
    () => performance.getEntriesByType('navigation')[0].nextHopProtocol,
  );
  results.protocol = protocol;
  assert(protocol === 'h2', `negotiated ${protocol}`);
  const issuer = (await resp.securityDetails())?.issuer;
  console.log(`  certificate issued by: ${issuer}`);
});

await check('a harmless post is sent', page, async () => {
  const r = await post(page, "Lunch at the café at 12:30 🎉 — who's in? \"quotes\" & <tags>");
  results.sent.harmless = r.sent;
  assert(r.state === 'posted', `page shows ${r.state}: ${r.shown}`);
});

await check('a post with a card number is sent (masked) and the page shows success', page, async () => {
  const [resp, r] = await Promise.all([
    page.waitForResponse((x) => x.url().endsWith('/CreateTweet')),
    post(page, 'Refund to 4111 1111 1111 1111 please'),
  ]);
  results.sent.card = r.sent;
  assert(r.state === 'posted', `page shows ${r.state}: ${r.shown}`);
  // The response says what was redacted, for a companion extension or the helpdesk.
  const headers = await resp.allHeaders();
  assert(headers['x-permeable-action'] === 'redact', `action ${headers['x-permeable-action']}`);
  assert(
    (headers['x-permeable-redacted'] || '').includes('pii.credit_card=1'),
    `redacted ${headers['x-permeable-redacted']}`,
  );
});

await check("a post with an AWS key is refused and the page shows the gateway's message", page, async () => {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/CreateTweet')),
    post(page, 'deploy key AKIAIOSFODNN7EXAMPLE oops').then((r) => {
      results.sent.aws = r.sent;
      return r;
    }),
  ]);
  const state = await page.getAttribute('#status', 'data-state');
  const shown = (await page.textContent('#status')).trim();
  assert(resp.status() === 403, `status ${resp.status()}`);
  const headers = await resp.allHeaders();
  assert(headers['x-permeable-action'] === 'block', `action ${headers['x-permeable-action']}`);
  assert(headers['x-permeable-rule'] === 'block-secrets', `rule ${headers['x-permeable-rule']}`);
  assert(state === 'block', `page state ${state}`);
  assert(shown === "That looks like a credential. Don't post it; rotate the key.", `page shows: ${shown}`);
  await page.screenshot({ path: path.join(artifacts, 'compose-refused-laptop.png') });
});

for (const [label, context] of [['laptop', laptop], ['phone', phone]]) {
  await check(`navigating to a blocked area shows the block page (${label})`, null, async () => {
    const p = await context.newPage();
    try {
      const resp = await p.goto(`${site}/messages`);
      assert(resp.status() === 403, `status ${resp.status()}`);
      const headers = await resp.allHeaders();
      assert(headers['x-permeable-action'] === 'block', `action ${headers['x-permeable-action']}`);
      assert(headers['x-permeable-rule'] === 'block-x-messages', `rule ${headers['x-permeable-rule']}`);
      const heading = (await p.textContent('h1')).trim();
      const text = await p.textContent('main');
      assert(/blocked/i.test(heading), `heading: ${heading}`);
      assert(text.includes('Direct messages on X are turned off'), `the rule's message is shown: ${text}`);
      assert(text.includes(headers['x-permeable-request-id']), 'the request id is shown');
      await fitsWidth(p);
      await p.screenshot({ path: path.join(artifacts, `block-${label}.png`), fullPage: true });
    } finally {
      await p.close();
    }
  });
}

for (const [label, context] of [['laptop', laptop], ['phone', phone]]) {
  await check(`a form post with an AWS key gets the block page (${label})`, null, async () => {
    const p = await context.newPage();
    try {
      await p.goto(`${site}/compose/reply`);
      await p.fill('#text', 'the deploy key is AKIAIOSFODNN7EXAMPLE');
      const [resp] = await Promise.all([
        p.waitForNavigation(),
        p.click('button[type=submit]'),
      ]);
      assert(resp.status() === 403, `status ${resp.status()}`);
      const headers = await resp.allHeaders();
      assert(headers['x-permeable-rule'] === 'block-secrets', `rule ${headers['x-permeable-rule']}`);
      const heading = (await p.textContent('h1')).trim();
      const text = await p.textContent('main');
      assert(heading === 'This comment was blocked', `heading: ${heading}`);
      assert(text.includes('an AWS access key'), `the category is named: ${text}`);
      assert(!text.includes('AKIAIOSFODNN7EXAMPLE'), 'the value is never shown');
      await fitsWidth(p);
      await p.screenshot({ path: path.join(artifacts, `block-post-${label}.png`), fullPage: true });
    } finally {
      await p.close();
    }
  });
}

let continueUrl = null;
await check('coach: the post is held and the page offers to review', page, async () => {
  await page.goto(`${site}/`);
  const r = await post(page, 'status of BLUEHERON?');
  assert(r.state === 'coach', `page state ${r.state}: ${r.shown}`);
  assert(r.shown === 'This mentions a confidential project.', `page shows: ${r.shown}`);
  continueUrl = await page.getAttribute('#review', 'href');
  assert(continueUrl && continueUrl.startsWith(`${site}/.permeable/coach?`), `review link ${continueUrl}`);
});

await check('coach interstitial on a phone', null, async () => {
  assert(continueUrl, 'no coach link');
  const p = await phone.newPage();
  try {
    await p.goto(continueUrl);
    await fitsWidth(p);
    await p.screenshot({ path: path.join(artifacts, 'coach-phone.png'), fullPage: true });
  } finally {
    await p.close();
  }
});

await check('coach → Continue (keyboard) → the post passes', page, async () => {
  await page.click('#review');
  await page.waitForURL((u) => u.pathname === '/.permeable/coach');
  await page.screenshot({ path: path.join(artifacts, 'coach-laptop.png'), fullPage: true });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim());
  assert(focused === 'Continue', `keyboard focus starts on Continue, not ${focused}`);
  await Promise.all([page.waitForURL(`${site}/`), page.keyboard.press('Enter')]);
  const r = await post(page, 'status of BLUEHERON?');
  results.sent.coached = r.sent;
  assert(r.state === 'posted', `page shows ${r.state}: ${r.shown}`);
});

await check('WebSocket messages flow both ways', page, async () => {
  await page.goto(`${site}/ws`);
  await page.waitForFunction(
    () => document.querySelectorAll('#log li').length >= 2 || document.body.dataset.error,
    null,
    { timeout: TIMEOUT },
  );
  const items = await page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
  assert(
    items[0] === 'welcome' && items[1] === 'echo: hello from the page',
    `messages: ${JSON.stringify(items)}`,
  );
});

await check('a large file upload arrives whole', page, async () => {
  await page.goto(`${site}/upload`);
  await page.setInputFiles('#file', uploadFile);
  await page.click('#send');
  await page.waitForFunction(
    () => document.getElementById('result').dataset.state !== 'pending',
    null,
    { timeout: 60_000 },
  );
  const state = await page.getAttribute('#result', 'data-state');
  const answer = await page.textContent('#result');
  assert(state === 'done', `upload ${state}: ${answer}`);
  results.upload = JSON.parse(answer);
  const size = fs.statSync(uploadFile).size;
  assert(results.upload.len === size, `the site received ${results.upload.len} of ${size} bytes`);
});

await browser.close();
fs.writeFileSync(path.join(artifacts, 'results.json'), JSON.stringify(results, null, 2));
for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
console.log(failures === 0 ? 'e2e: all cases passed' : `e2e: ${failures} case(s) failed`);
process.exit(failures === 0 ? 0 : 1);
