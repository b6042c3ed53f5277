// Temporary-style instrumentation for bench/api-path-daemon.ts (API_MARKS_PRELOAD=$PWD/bench/api-marks-preload.cjs):
// hrtime marks along the daemon's API path, written at exit to $NETD_API_MARKS. Not loaded by the daemon otherwise.
// temporary: hrtime marks in the daemon along the API path, written at exit to $NETD_API_MARKS
const fs = require('fs'); const http = require('http'); const path = require('path');
const out = process.env.NETD_API_MARKS; const marks = []; let cur;
const now = () => Number(process.hrtime.bigint()) / 1e3; // µs, monotonic, shared across processes
function mark(k) { if (cur) cur[k] = now(); }
process.on('exit', () => { try { fs.writeFileSync(out, JSON.stringify(marks)); } catch {} });
const root = path.dirname(require.resolve(path.join(process.argv[1], '..', '..', 'api', 'http.js')));
const H = require(path.join(root, 'http.js'));
const oh = H.Router.prototype.handle;
H.Router.prototype.handle = function (req, res) { if (req.method === 'POST') { cur = { url: req.url, handle: now() }; marks.push(cur); } else cur = undefined; const c = cur; const p = oh.call(this, req, res); return p.finally(() => { if (c) c.handled = now(); }); };
const od = H.Router.prototype.dispatch;
H.Router.prototype.dispatch = function (...a) { mark('dispatch'); return od.apply(this, a); };
const C = require(path.join(root, '..', 'cnm', 'controller.js'));
for (const m of ['attach', 'detach']) { const o = C.Controller.prototype[m]; C.Controller.prototype[m] = function (...a) { mark('ctl'); return o.apply(this, a); }; }
const oe = C.Controller.prototype.exclusive;
C.Controller.prototype.exclusive = function (op, fields, fn) { const c = cur; const p = oe.call(this, op, fields, async () => { if (c) c.fnStart = now(); try { return await fn(); } finally { if (c) c.fnEnd = now(); } }); p.then(() => { if (c) c.exclDone = now(); }, () => {}); return p; };
const oend = http.ServerResponse.prototype.end;
http.ServerResponse.prototype.end = function (...a) { const c = cur; if (c) c.endStart = now(); const r = oend.apply(this, a); if (c) c.endDone = now(); return r; };
