// The README's picture of the web page: starts `fcn serve` on a free loopback port with a model, opens
// the page in Debian's Chromium, segments one image on the server and saves the page as a PNG.
// Run by hand after `npm start` (never part of the tests):
//   node scripts/screenshot.mjs runs/demo/train/best.safetensors IMAGE docs/screenshot.png
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [model, image, out] = process.argv.slice(2);
if (!model || !image || !out) {
  process.stderr.write('usage: node scripts/screenshot.mjs MODEL IMAGE OUT.png\n');
  process.exit(2);
}
const executablePath = process.env.FCN_CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  process.stderr.write(`no Chromium at ${executablePath} (set FCN_CHROMIUM)\n`);
  process.exit(1);
}

const fcn = fileURLToPath(new URL('../bin/fcn.js', import.meta.url));
const server = spawn(process.execPath, [fcn, 'serve', '--model', model, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  // the first line names the URL: "fcn serve: http://127.0.0.1:PORT (...)"
  let text = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fcn serve printed no URL within 120 s')), 120_000);
    server.stdout.on('data', (chunk) => {
      text += chunk;
      const m = /fcn serve: (http:\/\/\S+)/.exec(text);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`fcn serve exited (${code})`)); });
  });
  const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 780 }, deviceScaleFactor: 1 });
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.setInputFiles('#file', image);
    await page.waitForSelector('#result[data-state="done"][data-source="server"]', { timeout: 120_000 });
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await browser.close();
  }
} finally {
  if (server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
}
