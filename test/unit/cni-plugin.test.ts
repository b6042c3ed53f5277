/**
 * The netd-cni executables against a scripted daemon on a unix socket: what they send (byte-identical
 * requests from the JS plugin and the native shim, env and stdin intact) and what they make of every kind
 * of reply (200/204/errors in CNI's and in netd's format, chunked or not, broken, silent, oversized).
 * Both must print the same bytes and exit with the same code for the same input.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLUGINS, requirePlugins, runPlugin, jsonOut, type PluginRun } from '../helpers/cni-plugin.js';
import { versionInfo } from '../../src/cni/version.js';
import { CLI } from '../helpers/daemon.js';

type Script = (sock: Socket, request: Buffer) => void;

describe('netd-cni executables (JS and shim) against a scripted daemon', () => {
  let dir: string;
  let server: Server;
  let script: Script = () => undefined;
  let requests: Buffer[] = [];

  const sockPath = () => join(dir, 'netd.sock');
  const host = () => `unix://${sockPath()}`;

  before(async () => {
    requirePlugins();
    dir = mkdtempSync(join(tmpdir(), 'netd-cni-unit-'));
    server = createServer((sock) => {
      let got = Buffer.alloc(0);
      sock.on('error', () => undefined);
      sock.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(got.subarray(0, end).toString())?.[1] ?? 0);
        if (got.length < end + 4 + len) return;
        requests.push(got);
        script(sock, got);
      });
    });
    await new Promise<void>((r) => server.listen(sockPath(), r));
  });

  after(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs both executables with the same input; asserts identical stdout and exit code; returns the JS run. */
  async function both(env: Record<string, string>, stdin: string | Buffer, extraEnv: Record<string, string> = {}): Promise<PluginRun> {
    const runs: PluginRun[] = [];
    for (const bin of PLUGINS) runs.push(await runPlugin(bin, { ...env, ...extraEnv }, stdin));
    assert.equal(runs[1].code, runs[0].code, `exit codes: js ${runs[0].code} (${runs[0].stdout}), shim ${runs[1].code} (${runs[1].stdout}) ${runs[1].stderr}`);
    assert.equal(runs[1].stdout.toString('hex'), runs[0].stdout.toString('hex'), `stdout differs:\njs:   ${runs[0].stdout}\nshim: ${runs[1].stdout}`);
    return runs[0];
  }

  const reply = (status: string, headers: string[], body: string, close = true): Script => (sock) => {
    const head = [`HTTP/1.1 ${status}`, ...headers].join('\r\n') + '\r\n\r\n';
    if (close) sock.end(head + body);
    else sock.write(head + body);
  };
  const json = (status: string, body: string): Script => reply(status, ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`], body);

  const ADD = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

  test('the JS plugin loads only node:net, node:fs and node:buffer (start-up), and the built bins are executable', () => {
    const js = readFileSync(PLUGINS[0].path, 'utf8');
    const required = [...js.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]).sort();
    assert.deepEqual(required, ['node:buffer', 'node:fs', 'node:net']);
    assert.match(js, /^#!\/usr\/bin\/env -S -u NODE_EXTRA_CA_CERTS node\n/);
    for (const path of [PLUGINS[0].path, PLUGINS[1].path, CLI]) assert.equal(statSync(path).mode & 0o111, 0o111, `${path} is executable`);
  });

  test('the request: POST /netd/v1/cni, JSON {env: CNI_* only, stdin: verbatim}, byte-identical from both', async () => {
    script = json('200 OK', '{}\n');
    const stdin = `{"cniVersion":"1.0.0","name":"n","host":"${host()}","x":"tab\\there \\"q\\" \\u00e9 \\ud83d\\ude00","raw":"é€😀\u007f","nested":{"host":"unix:///elsewhere"}}\n\t `;
    const env = { ...ADD, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a"b\\c;X=\u0001é', OTHER: 'not sent', NETD_HOST: 'unix:///ignored' };
    requests = [];
    await both(env, stdin);
    assert.equal(requests.length, 2);
    assert.equal(requests[1].toString('hex'), requests[0].toString('hex'), `requests differ:\n${requests[0]}\n${requests[1]}`);
    const text = requests[0].toString('utf8');
    assert.match(text, /^POST \/netd\/v1\/cni HTTP\/1\.1\r\n/);
    assert.match(text, /\r\nContent-Type: application\/json\r\n/);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(body, { env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_ARGS: env.CNI_ARGS, CNI_PATH: '/opt/cni/bin' }, stdin });
  });

  test('the socket: config `host`, else NETD_HOST, else /run/netd/netd.sock; other schemes are code 7', async () => {
    script = json('200 OK', '{"ok":1}');
    assert.equal((await both({ CNI_COMMAND: 'ADD' }, '{"cniVersion":"1.0.0"}', { NETD_HOST: host() })).stdout.toString(), '{"ok":1}\n');
    const r = await both({ CNI_COMMAND: 'ADD' }, '{"cniVersion":"1.0.0","host":"tcp://127.0.0.1:1"}', { NETD_HOST: host() });
    assert.deepEqual(jsonOut(r), { cniVersion: '1.0.0', code: 7, msg: 'invalid network configuration', details: 'host "tcp://127.0.0.1:1": only unix:///path is supported' });
    assert.equal(jsonOut(await both({ CNI_COMMAND: 'ADD' }, '{"host":7}')).code, 7);
    const gone = await both({ CNI_COMMAND: 'ADD' }, `{"cniVersion":"0.4.0","host":"unix://${dir}/none.sock"}`);
    assert.equal(gone.code, 1);
    assert.deepEqual(jsonOut(gone), { cniVersion: '0.4.0', code: 50, msg: 'netd is not available', details: `cannot connect to ${dir}/none.sock: ENOENT` });
    const long = await both({ CNI_COMMAND: 'ADD' }, `{"host":"unix:///${'x'.repeat(120)}"}`);
    assert.match(jsonOut(long).details, /ENAMETOOLONG$/, 'a path longer than sun_path is refused, not cut');
  });

  test('replies: 200 printed (Content-Length, chunked, close-delimited), 2xx without body prints nothing, exit 0', async () => {
    const conf = `{"cniVersion":"1.0.0","host":"${host()}"}`;
    for (const s of [
      json('200 OK', '{"cniVersion":"1.0.0","ips":[]}\n'),
      reply('200 OK', ['Transfer-Encoding: chunked'], '5\r\n{"cni\r\n1a\r\nVersion":"1.0.0","ips":[]}\r\n0\r\n\r\n'),
      reply('200 OK', ['Connection: close'], '{"cniVersion":"1.0.0","ips":[]}'),
    ]) {
      script = s;
      const r = await both(ADD, conf);
      assert.equal(r.code, 0);
      assert.equal(r.stdout.toString(), '{"cniVersion":"1.0.0","ips":[]}\n');
    }
    for (const s of [reply('204 No Content', [], ''), json('200 OK', '')]) {
      script = s;
      const r = await both(ADD, conf);
      assert.deepEqual([r.code, r.stdout.length], [0, 0]);
    }
  });

  test('error replies: a CNI error body verbatim; netd {"message"} and bare statuses become CNI errors (503 → 11, 413 → 7, else 100); exit 1', async () => {
    const conf = `{"cniVersion":"0.4.0","host":"${host()}"}`;
    const cases: [Script, unknown][] = [
      [json('409 Conflict', '{"cniVersion":"0.4.0","code":100,"msg":"already attached","details":"x"}\n'), { cniVersion: '0.4.0', code: 100, msg: 'already attached', details: 'x' }],
      [json('400 Bad Request', '{"code":7.0,"msg":"m"}'), { code: 7, msg: 'm' }],
      [json('400 Bad Request', '{"message":"bad \\"thing\\""}'), { cniVersion: '0.4.0', code: 100, msg: 'bad "thing"', details: 'HTTP 400' }],
      [json('503 Service Unavailable', '{"message":"busy"}'), { cniVersion: '0.4.0', code: 11, msg: 'netd is busy, try again later', details: 'busy' }],
      [json('503 Service Unavailable', ''), { cniVersion: '0.4.0', code: 11, msg: 'netd is busy, try again later', details: 'HTTP 503' }],
      [json('413 Payload Too Large', '{"message":"body over 1 MiB"}'), { cniVersion: '0.4.0', code: 7, msg: 'network configuration too large', details: 'body over 1 MiB' }],
      [reply('404 Not Found', ['Content-Length: 9'], 'not found'), { cniVersion: '0.4.0', code: 100, msg: 'netd answered HTTP 404' }],
      [json('500 Internal Server Error', '{"code":"7","msg":"m"}'), { cniVersion: '0.4.0', code: 100, msg: 'netd answered HTTP 500' }],
      [reply('garbage', [], ''), { cniVersion: '0.4.0', code: 100, msg: 'netd answered HTTP 0' }],
    ];
    for (const [s, want] of cases) {
      script = s;
      const r = await both(ADD, conf);
      assert.equal(r.code, 1);
      assert.deepEqual(jsonOut(r), want);
    }
  });

  test('a daemon that hangs up, answers half, or never answers: code 11 (try again later)', async () => {
    const conf = `{"cniVersion":"1.0.0","host":"${host()}"}`;
    const fast = { NETD_CNI_TIMEOUT_MS: '400' };
    const cases: [Script, RegExp][] = [
      [(sock) => sock.destroy(), /: (EPIPE|ECONNRESET)$/],
      [reply('200 OK', ['Content-Length: 100'], '{"half":'), /: EPIPE$/],
      [reply('200 OK', ['Transfer-Encoding: chunked'], '10\r\n{"ha'), /: EPIPE$/],
      [() => undefined, /within 0\.4 s$/],
      [reply('200 OK', ['Content-Length: 100'], '{"half":', false), /within 0\.4 s$/],
    ];
    for (const [s, details] of cases) {
      script = s;
      const r = await both(ADD, conf, fast);
      assert.equal(r.code, 1);
      const out = jsonOut(r);
      assert.equal(out.code, 11, JSON.stringify(out));
      assert.match(out.details, details);
    }
    script = (sock) => sock.end(`HTTP/1.1 200 OK\r\nContent-Length: ${17 << 20}\r\n\r\n` + 'x'.repeat(17 << 20));
    assert.match(jsonOut(await both(ADD, conf)).details, /EMSGSIZE$/, 'a reply over 16 MiB');
  });

  test('answered without a daemon: VERSION (as the daemon answers it), 4 no CNI_COMMAND, 6 stdin not JSON / not UTF-8, 7 stdin over 1 MiB', async () => {
    requests = [];
    const v = await both({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}', { NETD_HOST: host() });
    assert.equal(v.code, 0);
    assert.deepEqual(jsonOut(v), versionInfo('0.4.0'));
    assert.deepEqual(jsonOut(await both({ CNI_COMMAND: 'VERSION' }, '')), versionInfo(undefined));
    assert.equal(requests.length, 0, 'VERSION never reaches the daemon');
    const errors: [Record<string, string>, string | Buffer, unknown][] = [
      [{}, '{"cniVersion":"1.0.0"}', { cniVersion: '1.0.0', code: 4, msg: 'CNI_COMMAND is not set' }],
      [{ CNI_COMMAND: '' }, '{}', { cniVersion: '1.1.0', code: 4, msg: 'CNI_COMMAND is not set' }],
      [ADD, '{"cniVersion":"1.0.0",', { cniVersion: '1.1.0', code: 6, msg: 'cannot decode the network configuration on stdin', details: 'not valid JSON' }],
      [{ CNI_COMMAND: 'VERSION' }, 'nope', { cniVersion: '1.1.0', code: 6, msg: 'cannot decode the network configuration on stdin', details: 'not valid JSON' }],
      [ADD, Buffer.from('{"a":"\xff"}', 'latin1'), { cniVersion: '1.1.0', code: 6, msg: 'cannot decode the network configuration on stdin', details: 'not valid UTF-8' }],
      [ADD, `{"x":"${'a'.repeat(1 << 20)}"}`, { cniVersion: '1.1.0', code: 7, msg: 'network configuration too large', details: 'stdin exceeds 1048576 bytes' }],
    ];
    for (const [env, stdin, want] of errors) {
      const r = await both(env, stdin, { NETD_HOST: host() });
      assert.equal(r.code, 1);
      assert.deepEqual(jsonOut(r), want);
    }
    assert.equal(requests.length, 0);
  });

  test('a config whose escaped request exceeds the daemon\'s 1 MiB is refused locally with code 7, by both alike', async () => {
    requests = [];
    script = json('200 OK', '{}');
    // 600 KB of stdin that JSON-escaping doubles: under the stdin cap, over the daemon's body cap.
    const stdin = `{"cniVersion":"1.0.0","host":"${host()}","x":"${'\\"'.repeat(300_000)}"}`;
    const r = await both(ADD, stdin);
    assert.equal(r.code, 1);
    assert.deepEqual(jsonOut(r), { cniVersion: '1.0.0', code: 7, msg: 'network configuration too large', details: 'the request to netd exceeds 1048576 bytes' });
    assert.equal(requests.length, 0, 'nothing is sent');
  });

  test('a daemon that refuses while the request is still being sent (413, then hangs up): its reply is read, code 7', async () => {
    const path = join(dir, 'refuser.sock');
    const refuser = createServer((sock) => {
      let head = '';
      sock.on('error', () => undefined);
      sock.on('data', (d: Buffer) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n') || sock.writableEnded) return;
        sock.pause();
        const body = '{"message":"request body too large"}';
        sock.end(`HTTP/1.1 413 Payload Too Large\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        sock.destroy(); // unread request bytes: the sender sees EPIPE/ECONNRESET
      });
    });
    await new Promise<void>((r) => refuser.listen(path, r));
    try {
      const stdin = `{"cniVersion":"1.0.0","host":"unix://${path}","x":"${'a'.repeat(900_000)}"}`;
      for (let i = 0; i < 6; i++) {
        const r = await both(ADD, stdin, { NETD_CNI_TIMEOUT_MS: '5000' });
        assert.deepEqual(jsonOut(r), { cniVersion: '1.0.0', code: 7, msg: 'network configuration too large', details: 'request body too large' }, `run ${i}`);
      }
    } finally {
      refuser.close();
    }
  });

  test('NETD_CNI_TIMEOUT_MS: huge values clamp to 2^31-1 ms (never 1 ms), digits only, alike in both', async () => {
    const conf = `{"cniVersion":"1.0.0","host":"${host()}"}`;
    script = (sock) => setTimeout(() => json('200 OK', '{"late":true}')(sock, Buffer.alloc(0)), 300);
    for (const t of ['1e300', '99999999999999999999999', '4294967296', '2147483648', ' 0 ', '0x10', '-5', 'Infinity', '1.5', '']) {
      const r = await both(ADD, conf, { NETD_CNI_TIMEOUT_MS: t });
      assert.equal(r.code, 0, `NETD_CNI_TIMEOUT_MS=${JSON.stringify(t)}: ${r.stdout}`);
    }
  });

  test('reply headers parsed alike: Transfer-Encoding beyond 255 bytes, Content-Length decimal digits only', async () => {
    const conf = `{"cniVersion":"1.0.0","host":"${host()}"}`;
    script = reply('200 OK', [`Transfer-Encoding: ${'x'.repeat(300)}, chunked`], '4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n');
    assert.equal((await both(ADD, conf)).stdout.toString(), '{"a":1}\n');
    for (const len of ['0x7', '0b111', '7e0', '+7', '7.0', ' 7']) {
      script = reply('200 OK', [`Content-Length: ${len}`], '{"a":1}');
      const r = await both(ADD, conf);
      if (len === ' 7') assert.equal(r.code, 0, 'blanks around the value are trimmed');
      else assert.equal(jsonOut(r).code, 11, `Content-Length: ${len} is not a decimal length`);
    }
  });

  test('the shim survives a closed stdout (no SIGPIPE); the JS plugin does not spin on a non-blocking stdin', () => {
    const py = (code: string, bin: string, env: Record<string, string> = {}) => {
      const r = spawnSync('python3', ['-c', code, bin], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `python3 harness: ${r.stderr}`);
      return r.stdout.trim();
    };
    const closedStdout = [
      'import os, subprocess, sys',
      'r, w = os.pipe(); os.close(r)',
      'p = subprocess.run([sys.argv[1]], stdin=subprocess.DEVNULL, stdout=w, env={"CNI_COMMAND": "VERSION"})',
      'print(p.returncode)',
    ].join('\n');
    assert.equal(py(closedStdout, PLUGINS[1].path), '0', 'exit status, not death by SIGPIPE (-13)');
    const slowStdin = [
      'import os, fcntl, resource, subprocess, sys, time',
      'r, w = os.pipe()',
      'fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)',
      'p = subprocess.Popen([sys.argv[1]], stdin=r, stdout=subprocess.PIPE, env={"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"]})',
      'os.close(r); time.sleep(1.5); os.write(w, b\'{"cniVersion":"0.4.0"}\'); os.close(w)',
      'out = p.stdout.read(); p.wait()',
      'u = resource.getrusage(resource.RUSAGE_CHILDREN)',
      'print(p.returncode, round(u.ru_utime + u.ru_stime, 2), out.decode().strip())',
    ].join('\n');
    for (const bin of PLUGINS) {
      const [code, cpu, out] = py(slowStdin, bin.path).split(' ');
      assert.equal(code, '0', bin.name);
      assert.deepEqual(JSON.parse(out), versionInfo('0.4.0'), bin.name);
      assert.ok(Number(cpu) < 0.8, `${bin.name} used ${cpu} s of CPU waiting 1.5 s for stdin`);
    }
  });

  test('hostile stdin: both decide alike what is JSON (grammar, escapes, depth, duplicates, BOM)', async () => {
    script = json('200 OK', '{"ok":true}');
    const h = JSON.stringify(host());
    const inputs = [
      `{"host":${h},"a":01}`, `{"host":${h},"a":1.}`, `{"host":${h},"a":-}`, `{"host":${h},"a":.5}`, `{"host":${h},"a":1e}`,
      `{"host":${h},"a":"\t"}`, `{"host":${h},"a":"\\x"}`, `{"host":${h},"a":"\\u12G4"}`, `{"host":${h},}`, `{"host":${h}}}`,
      `{"host":${h} "a":1}`, `\ufeff{"host":${h}}`, `{"host":${h},"a":tru}`, `{"host":${h},"a":[1,]}`, `{"host":${h},"a":nul}`,
      `{"host":${h},"a":1e5,"b":-0.5E-3,"c":[true,false,null,{},[]],"d":{"e":[[{"f":"\\ud800"}]]}}`,
      `{"host":"unix:///nowhere","h\\u006fst":${h}}`, `{"host":"unix:///nowhere","x":{"host":1},"host":${h}}`,
      `{"host":${h},"deep":${'['.repeat(200000)}${']'.repeat(200000)}}`, `[${h}]`, `${h}`, '  ', '',
      `{"host":${h},"cniVersion":"\\u0031.\\u0030.0\\n\\u2028"}`, `{"host":${h},"cniVersion":"\\ud83d"}`,
    ];
    let differences = 0;
    for (const input of inputs) {
      for (const env of [ADD, { CNI_COMMAND: 'VERSION' }]) {
        const r = await both(env, input);
        if (r.code === null) differences++;
      }
    }
    assert.equal(differences, 0);
  });
});

describe('netd-cni reading a non-blocking stdin', () => {
  test('waits for the runtime to write (EAGAIN) without spinning on the CPU', async () => {
    requirePlugins();
    const js = PLUGINS.find((p) => p.name === 'js')!;
    // libuv makes a child's stdio blocking, so python3 (node-gyp's, always there) sets O_NONBLOCK and execs the plugin,
    // as a runtime written in Go may leave it.
    const wrapper = 'import fcntl, os, sys; fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) | os.O_NONBLOCK); os.execv(sys.argv[1], sys.argv[1:])';
    const child = spawn('python3', ['-c', wrapper, js.path], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: 'VERSION' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    await new Promise((r) => setTimeout(r, 1500));
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime, in 1/100 s
    child.stdin.end(JSON.stringify({ cniVersion: '0.4.0' }));
    assert.equal(await exited, 0, out);
    assert.deepEqual(JSON.parse(out), versionInfo('0.4.0'));
    assert.ok(ticks < 40, `used ${ticks}/150 ticks of CPU while waiting 1.5 s for stdin`);
  });
});
