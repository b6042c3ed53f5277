/** Parsing published ports: the `-p` syntax and libnetwork's portmap shape. No kernel, no root. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { parseDockerPortBinding, parsePortRequests, parsePublishSpec } from '../../src/portmap/parse.js';
import { formatBinding, toDockerPortBinding, type PortRequest } from '../../src/portmap/types.js';

const req = (over: Partial<PortRequest>): PortRequest => ({ proto: 'tcp', containerPort: 80, hostIp: undefined, hostPort: 0, hostPortEnd: 0, ...over });

describe('-p / --publish', () => {
  const ok: [string, PortRequest[]][] = [
    ['80', [req({})]],
    [':80', [req({})]],
    ['8080:80', [req({ hostPort: 8080, hostPortEnd: 8080 })]],
    ['8080:80/udp', [req({ proto: 'udp', hostPort: 8080, hostPortEnd: 8080 })]],
    ['8080:80/SCTP', [req({ proto: 'sctp', hostPort: 8080, hostPortEnd: 8080 })]],
    ['127.0.0.1:8080:80', [req({ hostIp: '127.0.0.1', hostPort: 8080, hostPortEnd: 8080 })]],
    ['127.0.0.1::80/udp', [req({ proto: 'udp', hostIp: '127.0.0.1' })]],
    ['0.0.0.0:8080:80', [req({ hostIp: '0.0.0.0', hostPort: 8080, hostPortEnd: 8080 })]],
    ['[2001:DB8::1]:8080:80', [req({ hostIp: '2001:db8::1', hostPort: 8080, hostPortEnd: 8080 })]],
    ['[::]::80', [req({ hostIp: '::' })]],
    // A range stays one request whatever its length (one firewall rule).
    ['8000-8001:80-81', [req({ containerPortEnd: 81, hostPort: 8000, hostPortEnd: 8001 })]],
    ['8000-8010:80', [req({ hostPort: 8000, hostPortEnd: 8010 })]],
    ['80-81/udp', [req({ proto: 'udp', containerPortEnd: 81 })]],
    ['1-65535:1-65535/udp', [req({ proto: 'udp', containerPort: 1, containerPortEnd: 65535, hostPort: 1, hostPortEnd: 65535 })]],
    ['1:65535', [req({ containerPort: 65535, hostPort: 1, hostPortEnd: 1 })]],
  ];
  for (const [spec, want] of ok) test(`accepts ${spec}`, () => assert.deepEqual(parsePublishSpec(spec), want));

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['0:80', /host port 0 is out of range/],
    ['65536:80', /host port 65536 is out of range/],
    ['8080:0', /container port 0 is out of range/],
    ['http:80', /host port "http" is not a port number/],
    ['8080:www', /container port "www" is not a port number/],
    ['-1:80', /host port "" is not a port number/],
    ['8080:', /container port is missing/],
    ['81-80', /ends before it starts/],
    ['8000-8002:80-81', /ranges of unequal length/],
    ['8000:80-81', /ranges of unequal length/],
    ['8080:80/icmp', /protocol "icmp" is not tcp, udp or sctp/],
    ['8080:80/', /protocol "" is not/],
    ['::1:8080:80', /too many ":"/],
    ['[::1]8080:80', /\[ADDRESS\]:HOST_PORT:CONTAINER_PORT/],
    ['[::1]:80', /expected \[HOST_IP\]:HOST_PORT:CONTAINER_PORT/],
    ['1.2.3.256:80:80', /host IP "1\.2\.3\.256" is not an IPv4 or IPv6 address/],
    ['localhost:80:80', /host IP "localhost" is not/],
    ['[fe80::1%eth0]:80:80', /is not an IPv4 or IPv6 address/],
    ['80 ', /whitespace/],
    ['8080:80\n-j ACCEPT', /whitespace/],
  ];
  for (const [spec, message] of bad) {
    test(`refuses ${JSON.stringify(spec)}`, () => {
      assert.throws(() => parsePublishSpec(spec), (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message));
    });
  }
});

describe("libnetwork's portmap shape (the API's `ports`)", () => {
  test('numeric protocols, HostPort 0 = pick one, HostPortEnd, and strings mixed in', () => {
    assert.deepEqual(
      parsePortRequests([
        { Proto: 17, Port: 53, HostIP: '', HostPort: 0 },
        { Proto: 6, IP: '172.17.0.2', Port: 80, HostIP: '127.0.0.1', HostPort: 8080 },
        { Proto: 132, Port: 9, HostPort: 9000, HostPortEnd: 9009 },
        { Port: 443 },
        '8443:443/udp',
      ]),
      [
        req({ proto: 'udp', containerPort: 53 }),
        req({ hostIp: '127.0.0.1', hostPort: 8080, hostPortEnd: 8080 }),
        req({ proto: 'sctp', containerPort: 9, hostPort: 9000, hostPortEnd: 9009 }),
        req({ containerPort: 443 }),
        req({ proto: 'udp', containerPort: 443, hostPort: 8443, hostPortEnd: 8443 }),
      ],
    );
    assert.deepEqual(parsePortRequests(undefined), []);
    assert.deepEqual(parsePortRequests(null), []);
  });

  test('what the CLI sends reads back as the same request', () => {
    for (const spec of ['80', '127.0.0.1:8080:80/udp', '[::]:8000-8010:80', '8000-8001:80-81/sctp']) {
      for (const r of parsePublishSpec(spec)) assert.deepEqual(parseDockerPortBinding(JSON.parse(JSON.stringify(toDockerPortBinding(r))), 0), r, spec);
    }
  });

  const bad: [unknown, RegExp][] = [
    ['x', /ports must be a list/],
    [[42], /must be an object or a string/],
    [[{ Proto: 1, Port: 80 }], /protocol number 1 is not one of 6 \(tcp\), 17 \(udp\), 132 \(sctp\)/],
    [[{ Proto: 'icmp', Port: 80 }], /protocol "icmp"/],
    [[{ Proto: 6 }], /Port \(the container port\) is required/],
    [[{ Proto: 6, Port: 0 }], /Port must be an integer from 1 to 65535/],
    [[{ Proto: 6, Port: 80.5 }], /Port must be an integer/],
    [[{ Proto: 6, Port: '80' }], /Port must be an integer/],
    [[{ Proto: 6, Port: 80, HostPort: 70000 }], /HostPort must be an integer from 0 to 65535/],
    [[{ Proto: 6, Port: 80, HostPort: 9000, HostPortEnd: 8000 }], /HostPortEnd 8000 is below HostPort 9000/],
    [[{ Proto: 6, Port: 80, HostPortEnd: 8000 }], /HostPortEnd needs a HostPort/],
    [[{ Proto: 6, Port: 80, HostIP: 'example.com' }], /host IP "example\.com"/],
    [[{ Proto: 6, Port: 80, HostIP: 7 }], /HostIP must be a string/],
    [[{ Proto: 6, Port: 80, Hostport: 8080 }], /unknown field "Hostport"/],
    [[{ Proto: 6, Port: 80, PortEnd: 70 }], /PortEnd 70 is below Port 80/],
    [[{ Proto: 6, Port: 80, PortEnd: 89, HostPort: 8000, HostPortEnd: 8005 }], /ranges of unequal length/],
    [Array.from({ length: 1025 }, (_, i) => `${10000 + i}:80`), /too many published ports: 1025 mappings in one request, at most 1024/],
  ];
  for (const [value, message] of bad) {
    test(`refuses ${JSON.stringify(value)}`, () => {
      assert.throws(() => parsePortRequests(value), (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message));
    });
  }
});

test('bindings are listed as `docker port` prints them', () => {
  assert.equal(formatBinding({ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }), '80/tcp -> 0.0.0.0:8080');
  assert.equal(formatBinding({ proto: 'udp', hostIp: '::', hostPort: 53, containerPort: 5353 }), '5353/udp -> [::]:53');
});
