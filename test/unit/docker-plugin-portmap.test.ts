/** Published ports between libnetwork's portmap entries and netd's requests and bindings. No kernel. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { dockerBindingsOf, portRequestsOf } from '../../src/docker-plugin/portmap.js';

const PM = 'com.docker.network.portmap';

describe('portmap → PortRequest', () => {
  test('dockerd 20.10 entries: Proto 6/17/132, HostIP "" is every address, HostPort 0 picks one', () => {
    assert.deepEqual(portRequestsOf({ [PM]: [{ Proto: 6, IP: '', Port: 80, HostIP: '127.0.0.1', HostPort: 8080, HostPortEnd: 8080 }] }), [
      { proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPort: 8080, hostPortEnd: 8080 },
    ]);
    assert.deepEqual(
      portRequestsOf({
        [PM]: [
          { Proto: 17, IP: '', Port: 53, HostIP: '', HostPort: 5353, HostPortEnd: 5353 },
          { Proto: 132, IP: '', Port: 9, HostIP: '::1', HostPort: 0, HostPortEnd: 0 },
          { Proto: 6, IP: '', Port: 81, HostIP: '', HostPort: 8000, HostPortEnd: 8010 },
        ],
      }),
      [
        { proto: 'udp', containerPort: 53, hostIp: undefined, hostPort: 5353, hostPortEnd: 5353 },
        { proto: 'sctp', containerPort: 9, hostIp: '::1', hostPort: 0, hostPortEnd: 0 },
        { proto: 'tcp', containerPort: 81, hostIp: undefined, hostPort: 8000, hostPortEnd: 8010 },
      ],
    );
    assert.deepEqual(portRequestsOf({}), []);
    assert.deepEqual(portRequestsOf({ [PM]: null, 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }] }), []);
  });

  test('fields netd does not know (a later dockerd\'s) are ignored, not refused', () => {
    assert.deepEqual(portRequestsOf({ [PM]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080, Nope: 1, HostIPs: ['x'] }] }), [
      { proto: 'tcp', containerPort: 80, hostIp: undefined, hostPort: 8080, hostPortEnd: 8080 },
    ]);
  });

  test('malformed entries are refused', () => {
    const bad: unknown[] = [
      {},
      'x',
      [{ Proto: 1, Port: 80 }],
      [{ Proto: 6, Port: 0 }],
      [{ Proto: 6, Port: 70000 }],
      [{ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8000 }],
      [{ Proto: 6, Port: 80, HostPort: -1 }],
      [{ Proto: 6, Port: 80.5 }],
      [{ Proto: 6, Port: 80, HostIP: 'localhost' }],
      [{ Proto: 6, Port: 80, HostIP: 7 }],
      [{ Proto: 'tcp ', Port: 80 }],
      [null],
      ['8080:80'],
      Array.from({ length: 1025 }, () => ({ Proto: 6, Port: 80 })),
    ];
    for (const value of bad) assert.throws(() => portRequestsOf({ [PM]: value }), InvalidArgumentError, JSON.stringify(value).slice(0, 80));
  });
});

describe('PortBinding → portmap (EndpointOperInfo)', () => {
  test('one entry per port with the container address and the real host port; long ranges stay one entry', () => {
    assert.deepEqual(dockerBindingsOf([{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 49153, containerPort: 80 }], '172.18.0.2'), [
      { Proto: 6, IP: '172.18.0.2', Port: 80, HostIP: '0.0.0.0', HostPort: 49153, HostPortEnd: 49153 },
    ]);
    assert.deepEqual(dockerBindingsOf([{ proto: 'udp', hostIp: '::', hostPort: 8000, hostPortEnd: 8001, containerPort: 80, containerPortEnd: 81 }], '172.18.0.2'), [
      { Proto: 17, IP: '172.18.0.2', Port: 80, HostIP: '::', HostPort: 8000, HostPortEnd: 8000 },
      { Proto: 17, IP: '172.18.0.2', Port: 81, HostIP: '::', HostPort: 8001, HostPortEnd: 8001 },
    ]);
    assert.deepEqual(dockerBindingsOf([{ proto: 'sctp', hostIp: '0.0.0.0', hostPort: 1, hostPortEnd: 65535, containerPort: 1, containerPortEnd: 65535 }], '10.0.0.2'), [
      { Proto: 132, IP: '10.0.0.2', Port: 1, HostIP: '0.0.0.0', HostPort: 1, HostPortEnd: 65535, PortEnd: 65535 },
    ]);
  });
});
