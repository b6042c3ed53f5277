/**
 * Generators of hostile raw HTTP requests for netd's API (fast-check arbitraries): request lines with bad
 * methods, targets and versions, netd's and Docker's paths with bad segments and queries, headers that lie
 * or overflow, and bodies of every wrong shape (JSON of wrong types, huge numbers, deep nesting, bytes).
 *
 * Nothing generated may point netd at a real process or namespace: attach targets and container
 * references are "defanged" (see `defang`), so the fuzzer can never attach to, or detach, anything
 * outside the test's own network.
 */
import fc from 'fast-check';

/** A PID above the kernel's maximum (2^22): never a real process. */
const NO_SUCH_PID = 4_194_305;

/** A reference that cannot name a PID, a path, an id prefix or an existing container. */
function defangRef(value: string): string {
  return /^\d+$/.test(value) || value.startsWith('/') || /^[0-9a-f]{1,64}$/.test(value) || value === '' ? `zz${value}` : value;
}

function defangValue(value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? NO_SUCH_PID + (value % 1000) : value;
  if (typeof value === 'string') return defangRef(value);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = { ...(value as Record<string, unknown>) };
    for (const k of ['pid', 'path', 'sandbox']) if (k in o) o[k] = defangValue(o[k]);
    return o;
  }
  return value;
}

/** Rewrites every container reference of a request body so that it names nothing real. */
export function defang(body: string): string {
  // Only a JSON object can carry a reference; the generator's huge bodies (deep nesting) never are one.
  if (body.length > 100_000 || !body.trimStart().startsWith('{')) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return body;
  const o = parsed as Record<string, unknown>;
  let changed = false;
  for (const k of ['target', 'container', 'Container']) {
    if (k in o) {
      o[k] = defangValue(o[k]);
      changed = true;
    }
  }
  return changed ? JSON.stringify(o) : body;
}

const ROUTES = [
  '/_ping', '/version', '/networks', '/networks/create', '/networks/prune', '/networks/{x}', '/networks/{x}/connect', '/networks/{x}/disconnect',
  '/netd/v1/attach', '/netd/v1/detach', '/netd/v1/endpoints', '/netd/v1/sandboxes', '/netd/v1/sandboxes/{x}', '/netd/v1/containers/{x}/ports', '/netd/v1/firewall/reload',
];

const text = (maxLength: number) => fc.string({ unit: 'binary-ascii', maxLength });
const anyText = (maxLength: number) => fc.string({ unit: 'binary', maxLength });

const segment = fc.oneof(
  fc.constantFrom('bridge', 'host', 'none', 'fuzznet', 'x', '%', '%E0%A4%A', '%ZZ', '%00', '..', '%2F', 'a%2Fb', '%C0%AF', '🦀', 'zz'),
  text(20).map((s) => encodeURIComponent(defangRef(s))),
  text(20).map(defangRef),
  fc.string({ unit: fc.constantFrom('%', 'A', 'f', '0', 'G', '/', '?', '#'), maxLength: 12 }),
);

const path = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom('', '', '/v1.41', '/v1.24', '/v1.44', '/v9.99', '/v1.x', '/v', '//'), fc.constantFrom(...ROUTES), segment).map(([p, r, s]) => p + r.replace('{x}', s)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('/networks', '/v1.41/networks'), fc.oneof(text(40), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)))).map(([p, q]) => `${p}?filters=${q}`) },
  { weight: 1, arbitrary: fc.constantFrom('http://[x/', 'http://[::1/_ping', 'http://netd/_ping', 'http://:/', 'https://a b/', '*', '', '/%', '/_ping#x', '/?%', '//_ping', '/\x7f', 'ftp://x/y') },
  { weight: 1, arbitrary: text(60) },
);

const method = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'DELETE', 'HEAD') },
  { weight: 2, arbitrary: fc.constantFrom('PUT', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'get', 'SEARCH', 'PROPFIND') },
  { weight: 1, arbitrary: text(10) },
);

const version = fc.oneof({ weight: 10, arbitrary: fc.constant('HTTP/1.1') }, { weight: 2, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'http/1.1', '', 'HTTP/1.1 extra') }, { weight: 1, arbitrary: text(12) });

/** Small JSON values of every type (cheaper to generate than fc.jsonValue). */
const smallJson = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.constantFrom([], {}, [null], { '': 0 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
);

/** A JSON value of a wrong type for any field. */
const wrongValue = fc.oneof(
  { weight: 3, arbitrary: smallJson },
  fc.constantFrom('', '192.0.2.300/24', '198.51.100.0/33', 'fe80::/129', '::ffff:1.2.3.4', 'zz:zz', '-1', '1-65535:1-65535/udp', '0', 'bridge', 'host', 'container:zz', '../../etc/passwd', 'x'.repeat(300)),
  fc.array(smallJson, { maxLength: 3 }),
);

/** Bodies shaped like the real ones, with fields of wrong (or right) types. */
const shaped = fc.oneof(
  fc.record(
    {
      Name: fc.oneof(fc.string({ maxLength: 20 }).map((s) => `fz${s}`), wrongValue),
      Driver: fc.oneof(fc.constantFrom('bridge', 'host', 'null', 'overlay', 'macvlan'), wrongValue),
      Internal: wrongValue,
      EnableIPv6: wrongValue,
      Options: fc.oneof(fc.dictionary(fc.constantFrom('com.docker.network.bridge.name', 'com.docker.network.driver.mtu', 'com.docker.network.bridge.enable_icc', 'x'), wrongValue), wrongValue),
      Labels: fc.oneof(fc.dictionary(text(5), fc.string({ maxLength: 5 })), wrongValue),
      IPAM: fc.oneof(fc.record({ Driver: wrongValue, Config: fc.oneof(fc.array(fc.record({ Subnet: wrongValue, Gateway: wrongValue, IPRange: wrongValue, AuxiliaryAddresses: wrongValue }, { requiredKeys: [] }), { maxLength: 3 }), wrongValue) }, { requiredKeys: [] }), wrongValue),
      Container: wrongValue,
      EndpointConfig: fc.oneof(fc.record({ IPAMConfig: wrongValue, Aliases: wrongValue, MacAddress: wrongValue }, { requiredKeys: [] }), wrongValue),
    },
    { requiredKeys: [] },
  ),
  fc.record(
    {
      target: fc.oneof(wrongValue, fc.record({ pid: wrongValue, path: wrongValue, sandbox: wrongValue }, { requiredKeys: [] })),
      network: fc.oneof(fc.constantFrom('fuzznet', 'bridge', 'host', 'none'), wrongValue),
      name: wrongValue,
      ip: wrongValue,
      ip6: wrongValue,
      mac: wrongValue,
      aliases: wrongValue,
      mode: fc.oneof(fc.constantFrom('bridge', 'host', 'none', 'container:', 'container:zz'), wrongValue),
      ports: fc.oneof(fc.array(fc.oneof(wrongValue, fc.record({ Proto: wrongValue, Port: wrongValue, HostIP: wrongValue, HostPort: wrongValue }, { requiredKeys: [] })), { maxLength: 3 }), wrongValue),
      extras: wrongValue,
      container: wrongValue,
      unknownField: wrongValue,
    },
    { requiredKeys: [] },
  ),
).map((o) => JSON.stringify(o));

/** Big bodies and headers are made once: the same few sizes recur, and building them dominates generation. */
const made = new Map<string, { text: string; bytes: Buffer }>();
function repeated(unit: string, n: number, tail = ''): string {
  const key = `${unit}|${n}|${tail}`;
  let m = made.get(key);
  if (!m) {
    const text = unit.repeat(n) + tail;
    m = { text, bytes: Buffer.from(text, 'latin1') };
    made.set(key, m);
  }
  return m.text;
}
function bytesOf(text: string): Buffer {
  if (text.length > 100_000) for (const m of made.values()) if (m.text === text) return m.bytes;
  return Buffer.from(text, 'latin1');
}

const hugeNumbers = fc.constantFrom('1e999', '-1e999', '123456789012345678901234567890', '0.0000000000000000000000001', '-0', '1E+308', '9007199254740993');

const body = fc.oneof(
  { weight: 5, arbitrary: shaped },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('Name', 'target', 'container', 'Container', 'ports', 'IPAM'), hugeNumbers).map(([k, n]) => `{"${k}": ${n}}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('[', '{"a":', '[{"x":'), fc.constantFrom(10, 1000, 100_000, 300_000)).map(([open, n]) => repeated(open, n)) },
  { weight: 1, arbitrary: fc.constantFrom(100, 5_000, 100_000).map((n) => repeated('[', n, repeated(']', n))) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString('latin1')) },
  { weight: 1, arbitrary: fc.constantFrom('', '{}', 'null', '"x"', '{"Name": "x"', '{"Name": "\\ud800"}', '\ufeff{}', '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": 1}}') },
);

/** Extra header lines: lies about the body, oversized or malformed headers. */
const headerLines = fc.oneof({ weight: 3, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: fc.array(
  fc.oneof(
    fc.constantFrom('Content-Type: text/plain', 'Content-Type: application/json; charset=utf-8', 'Content-Type: ', 'Transfer-Encoding: gzip', 'Connection: close', 'Connection: keep-alive', 'Expect: 100-continue', 'Content-Length: -1', 'Content-Length: 99999999999', 'Content-Length: abc', 'Content-Length: 5, 6', 'Host:', 'Upgrade: websocket'),
    fc.tuple(text(20), anyText(40)).map(([k, v]) => `${k}: ${v}`),
    fc.constantFrom(100, 8_000, 17_000, 40_000).map((n) => `X-Long: ${'a'.repeat(n)}`),
    text(30),
  ),
  { maxLength: 3 },
) });

/**
 * Well-formed requests on a few names, so that state really changes while the rest fuzz: networks and
 * sandboxes created, attached, connected, removed and pruned.
 */
const fzName = fc.constantFrom('fza', 'fzb', 'fzc', 'fzd');
const plausible = fc.oneof(
  fc.record({ Name: fzName, Driver: fc.constantFrom('bridge', 'bridge', 'null'), Internal: fc.boolean(), Options: fc.constantFrom({}, { 'com.docker.network.bridge.enable_icc': 'false' }, { 'com.docker.network.driver.mtu': '1400' }) }).map((b) => ['POST', '/v1.41/networks/create', b] as const),
  fzName.map((name) => ['POST', '/netd/v1/sandboxes', { name }] as const),
  fzName.map((name) => ['DELETE', `/netd/v1/sandboxes/${name}`, undefined] as const),
  fzName.map((name) => ['DELETE', `/v1.41/networks/${name}`, undefined] as const),
  fc.constant(['POST', '/v1.41/networks/prune', undefined] as const),
  fc.constant(['POST', '/netd/v1/firewall/reload', undefined] as const),
  fc.tuple(fzName, fc.constantFrom('fuzznet', 'bridge', 'fza', 'fzb', 'none', 'host')).map(([sandbox, network]) => ['POST', '/netd/v1/attach', { target: { sandbox }, network }] as const),
  fc.tuple(fzName, fzName).map(([network, container]) => ['POST', `/v1.41/networks/${network}/connect`, { Container: container }] as const),
  fc.tuple(fzName, fzName).map(([network, container]) => ['POST', `/v1.41/networks/${network}/disconnect`, { Container: container }] as const),
  fc.tuple(fzName, fc.option(fzName)).map(([container, network]) => ['POST', '/netd/v1/detach', { container, ...(network ? { network } : {}) }] as const),
).map(([method, path, body]): FuzzRequest => {
  const payload = body === undefined ? '' : JSON.stringify(body);
  return { bytes: Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: netd\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`), end: false };
});

export interface FuzzRequest {
  bytes: Buffer;
  /** Half-close after sending (most clients), or keep the connection open and stop listening after a while. */
  end: boolean;
}

/** One raw request. Most carry a correct Content-Length (or chunked framing) so that they reach the router. */
const hostile: fc.Arbitrary<FuzzRequest> = fc
  .record({ method, path, version, body, headerLines, framing: fc.constantFrom('length', 'length', 'length', 'chunked', 'none', 'wrong-length'), json: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), end: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), garbage: fc.oneof({ weight: 19, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }) }) })
  .map(({ method, path, version, body, headerLines, framing, json, end, garbage }) => {
    if (garbage) return { bytes: Buffer.from(garbage), end };
    const payload = bytesOf(defang(body));
    const lines = [`${method} ${path} ${version}`.trimEnd(), 'Host: netd', ...(json ? ['Content-Type: application/json'] : []), ...headerLines];
    let bodyBytes: Buffer = payload;
    if (framing === 'length') lines.push(`Content-Length: ${payload.length}`);
    if (framing === 'wrong-length') lines.push(`Content-Length: ${payload.length + 7}`);
    if (framing === 'chunked') {
      lines.push('Transfer-Encoding: chunked');
      bodyBytes = Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n0\r\n\r\n')]);
    }
    return { bytes: Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bodyBytes]), end };
  });

/** One request: mostly hostile, some well-formed ones changing state in between. */
export const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.oneof({ weight: 9, arbitrary: hostile }, { weight: 1, arbitrary: plausible });
