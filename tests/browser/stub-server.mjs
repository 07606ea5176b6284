// A stand-in for `dstore gateway`, to work on the web UI and its browser test without the Rust
// server: it serves the three UI files from src/gateway/ui/ and answers /api/v1/search, /summary
// and /event/{qid} with made-up events, shaped as the gateway's answers are. It filters only as much
// as the test and a person clicking around need.
//
//   node tests/browser/stub-server.mjs [PORT]     (STUB_TOKEN=secret to ask for a bearer token)
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const UI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/gateway/ui');
const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/ui/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/ui/app.css': ['app.css', 'text/css; charset=utf-8'],
};
const QTYPES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DS: 43, DNSKEY: 48,
  SVCB: 64, HTTPS: 65, ANY: 255, CAA: 257 };
const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const TYPES = { query: 'DNSQueryType', response: 'DNSResponseType', 'outgoing-query': 'DNSOutgoingQueryType',
  'incoming-response': 'DNSIncomingResponseType' };

function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Query/response pairs over the last two days, busier in the last hours; h148.example.test. is
// asked exactly once, so its search finds two events.
export function makeEvents(now = Date.now() / 1000) {
  const rnd = random(42);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const names = ['www.example.com.', 'mail.example.org.', 'api.example.net.', 'cdn.example.com.',
    'login.example.org.', 'missing.example.com.', 'www.example.test.'];
  for (let i = 1; i <= 40; i++) if (i !== 148) names.push(`h${i}.example.test.`);
  const clients = ['192.0.2.10', '192.0.2.11', '192.0.2.25', '198.51.100.7', '2001:db8::53', '203.0.113.9'];
  const events = [];
  const pair = (name, t, hex) => {
    const qtype = pick(['A', 'A', 'A', 'AAAA', 'AAAA', 'HTTPS', 'MX', 'TXT']);
    const rcode = name.startsWith('missing') ? 3 : rnd() < 0.03 ? 2 : 0;
    const qid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    const requestor = pick(clients);
    const port = 1024 + Math.floor(rnd() * 60000);
    const latency = 200 + Math.floor(rnd() * 40000);
    const base = { origRequestor: '', preason: '', qid, question: name, requestor, responder: '192.0.2.53',
      tags: [], type: qtype };
    const rrs = rcode ? [] : qtype === 'A' ? [{ name, type: 1, class: 1, ttl: 300, rdata: `192.0.2.${1 + Math.floor(rnd() * 200)}` }]
      : qtype === 'AAAA' ? [{ name, type: 28, class: 1, ttl: 300, rdata: '2001:db8::1' }] : [];
    const sec = Math.floor(t);
    const usec = Math.floor((t - sec) * 1e6);
    const common = { serverIdentity: 'dnsdist-1', socketFamily: requestor.includes(':') ? 'INET6' : 'INET',
      socketProtocol: 'UDP', fromPort: port, toPort: 53, id: Math.floor(rnd() * 65536), qtype: QTYPES[qtype], qclass: 1 };
    events.push({ answer: '', ...base, qr: false, rcode: 0, timeSec: sec, timeUsec: usec,
      messageType: 'DNSQueryType', ...common, inBytes: 40 + name.length });
    const rt = t + latency / 1e6;
    events.push({ answer: rrs.map((r) => `${r.name}, ${r.rdata}`).join(', '), ...base, qr: true, rcode,
      timeSec: Math.floor(rt), timeUsec: Math.floor((rt - Math.floor(rt)) * 1e6), messageType: 'DNSResponseType', ...common,
      inBytes: 60 + name.length, rcodeName: Object.keys(RCODES).find((k) => RCODES[k] === rcode), rrs,
      latencyUsec: latency, queryTimeSec: sec, queryTimeUsec: usec });
  };
  for (let i = 0; i < 420; i++) {
    const ago = rnd() < 0.5 ? rnd() * 6 * 3600 : rnd() * 48 * 3600;
    const hex = Array.from({ length: 32 }, () => Math.floor(rnd() * 16).toString(16)).join('');
    pair(rnd() < 0.3 ? pick(names.slice(0, 7)) : pick(names), now - ago, hex);
  }
  pair('h148.example.test.', now - 5400.25, '7f3c2a10b9e84d2c9a5e0c1d2e3f4a5b');
  events.sort((a, b) => a.timeSec - b.timeSec || a.timeUsec - b.timeUsec);
  return events;
}

class BadRequest extends Error {
  constructor(message, parameter) { super(message); this.parameter = parameter; }
}

function parseTime(v, now) {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const rel = /^-(\d+)([smhdw])$/.exec(v);
  if (rel) return now - Number(rel[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[rel[2]];
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new Error(`\`${v}\` is not a time`);
  return ms / 1000;
}

function duration(v) {
  const m = /^(\d+)([smhdw]?)$/.exec(v);
  if (!m) throw new Error(`\`${v}\` is not a duration such as 30s, 15m, 2h, 7d or 1w`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
}

function under(name, domain) {
  const n = name.toLowerCase().replace(/\.$/, '');
  const d = domain.toLowerCase().replace(/\.$/, '');
  return n === d || n.endsWith(`.${d}`);
}

// The conditions of a query string as a predicate; throws BadRequest as the gateway answers 400.
function filterOf(params, now) {
  const tests = [];
  let from = -Infinity;
  let to = Infinity;
  for (const [key, value] of params) {
    const fail = (why) => { throw new BadRequest(`${key}: ${why}`, key); };
    try {
      switch (key) {
        case 'limit': case 'order': case 'cursor': case 'interval': case 'top': break;
        case 'from': from = Math.max(from, parseTime(value, now)); break;
        case 'to': to = parseTime(value, now); break;
        case 'last': from = Math.max(from, now - duration(value)); break;
        case 'qtype':
          if (!(value.toUpperCase() in QTYPES)) fail(`\`${value}\` is not a qtype (A, AAAA, MX, ... or a number)`);
          tests.push((e) => e.type === value.toUpperCase());
          break;
        case 'rcode': {
          const neg = value.startsWith('!');
          const code = RCODES[value.replace('!', '').toUpperCase()];
          if (code == null) fail(`\`${value}\` is not an rcode`);
          tests.push((e) => e.qr && (e.rcode === code) !== neg);
          break;
        }
        case 'type':
          if (!TYPES[value]) fail(`\`${value}\` is not a message type: query, response, outgoing-query, incoming-response`);
          tests.push((e) => e.messageType === TYPES[value]);
          break;
        case 'q':
          for (const w of value.split(/\s+/).filter(Boolean)) {
            if (w.includes('/')) {
              const [, bits] = w.split('/');
              if (!(Number(bits) <= (w.includes(':') ? 128 : 32))) fail(`\`${w}\` is not an address range: the prefix is too long`);
              const prefix = w.split('/')[0].split('.').slice(0, Math.floor(Number(bits) / 8)).join('.');
              tests.push((e) => e.requestor.startsWith(prefix) || e.responder.startsWith(prefix));
            } else if (/^[\d.]+$/.test(w) || w.includes(':')) {
              tests.push((e) => e.requestor === w || e.responder === w);
            } else if (w.startsWith('~')) {
              tests.push((e) => e.answer.includes(w.slice(1)));
            } else if (w.startsWith('=')) {
              tests.push((e) => e.qid.replace(/-/g, '') === w.slice(1).replace(/-/g, '').toLowerCase());
            } else if (w.startsWith('rcode:')) {
              const neg = w.startsWith('rcode:!');
              const code = Number(w.replace(/^rcode:!?/, ''));
              tests.push((e) => e.qr && (e.rcode === code) !== neg);
            } else {
              tests.push((e) => under(e.question, w));
            }
          }
          break;
        default:
          throw new BadRequest(`\`${key}\` is not a search condition`, key);
      }
    } catch (e) {
      if (e instanceof BadRequest) throw e;
      fail(e.message);
    }
  }
  if (from >= to) throw new BadRequest('from: must be before to (the time range is empty)', 'from');
  return (e) => {
    const t = e.timeSec + e.timeUsec / 1e6;
    return t >= from && t < to && tests.every((f) => f(e));
  };
}

function top(events, key, n) {
  const counts = new Map();
  for (const e of events) {
    const v = key(e);
    if (v != null) counts.set(v, (counts.get(v) || 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n)
    .map(([value, count]) => ({ value, count }));
}

export function startStub({ port = 0, token = process.env.STUB_TOKEN } = {}) {
  const now = Date.now() / 1000;
  const events = makeEvents(now);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://stub');
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(type === 'application/json' ? JSON.stringify(body) : body);
    };
    if (FILES[url.pathname]) {
      const [file, type] = FILES[url.pathname];
      return send(200, readFileSync(path.join(UI, file)), type);
    }
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      return send(401, { error: 'a bearer token is needed: Authorization: Bearer <token>' });
    }
    const started = process.hrtime.bigint();
    const msec = () => Number(process.hrtime.bigint() - started) / 1e6;
    try {
      const at = Date.now() / 1000;
      if (url.pathname === '/api/v1/search') {
        const match = filterOf(url.searchParams, at);
        const limit = Number(url.searchParams.get('limit') || 100);
        const [, offset] = (url.searchParams.get('cursor') || '0:0').split(':').map(Number);
        const found = events.filter(match);
        if (url.searchParams.get('order') !== 'oldest') found.reverse();
        const items = found.slice(offset, offset + limit);
        const next = items.length === limit ? `${Math.floor(at * 1e6)}:${offset + limit}` : null;
        return send(200, { items, number: items.length, msec: msec(), next, timedOut: false });
      }
      if (url.pathname === '/api/v1/summary') {
        const match = filterOf(url.searchParams, at);
        const found = events.filter(match);
        const interval = Number(url.searchParams.get('interval') || 3600);
        const n = Number(url.searchParams.get('top') || 10);
        const buckets = new Map();
        for (const e of found) {
          const t = Math.floor(e.timeSec / interval) * interval;
          buckets.set(t, (buckets.get(t) || 0) + 1);
        }
        return send(200, {
          total: found.length,
          histogram: { interval, buckets: [...buckets].map(([time, count]) => ({ time, count })) },
          top: { qname: top(found, (e) => e.question, n), requestor: top(found, (e) => e.requestor, n),
            rcode: top(found, (e) => e.rcodeName, 64), qtype: top(found, (e) => e.type, 64) },
          msec: msec(), timedOut: false,
        });
      }
      const id = url.pathname.match(/^\/api\/v1\/event\/([^/]+)$/);
      if (id) {
        const items = events.filter((e) => e.qid === decodeURIComponent(id[1]));
        return items.length ? send(200, { items }) : send(404, { error: `no event has the id ${id[1]}` });
      }
      return send(404, { error: `no such page: ${url.pathname}` });
    } catch (e) {
      if (e instanceof BadRequest) return send(400, { error: e.message, parameter: e.parameter });
      return send(500, { error: 'internal error' });
    }
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const h148 = events.filter((e) => e.question === 'h148.example.test.');
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        expect: { name: 'h148.example.test.', count: h148.length, qid: h148[0].qid },
        close: () => new Promise((done) => { server.closeAllConnections(); server.close(done); }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const stub = await startStub({ port: Number(process.argv[2] || 0) });
  console.log(`${stub.url}\nDSTORE_UI_EXPECT='${JSON.stringify(stub.expect)}'`);
}
