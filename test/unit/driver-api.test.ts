/**
 * The core reads what a driver can do from its capabilities, never from its name: drivers and
 * predefined networks named unlike Docker's behave as their capabilities say. Endpoint options reach
 * the driver untouched, and what it reports comes back in the attach result. Also the bridge driver's
 * reading of its endpoint options, and the upgrade of records written before endpoint options existed.
 */
import { test } from 'node:test';
import { MAC, Prefix, type InterfaceAddress } from '../../src/net/index.js';
import assert from 'node:assert/strict';
import { Controller } from '../../src/cnm/controller.js';
import type { DriverEndpoint } from '../../src/driverapi/model.js';
import { PORT_MAP } from '../../src/driverapi/labels.js';
import { portRequestsOf, upgradeLegacyEndpoint } from '../../src/drivers/bridge/endpoint-options.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../../src/ipam/default-pools.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { ConflictError, ForbiddenError, InvalidArgumentError } from '../../src/errors.js';
import { FakeNamespaces, RecordingDriver, att, withDir } from '../helpers/fake-core.js';

const VNI = 'com.example.overlay.vni';

/** An overlay-like driver: an interface, one endpoint option of its own, something to report. */
class OverlayDriver extends RecordingDriver {
  options: unknown[] = [];
  constructor() {
    super('overlay', { interface: true, endpointOptions: [VNI] });
  }
  override async join(n: unknown, e: { ifname: string; ipv4?: InterfaceAddress; options?: Record<string, unknown> }) {
    this.options.push(e.options);
    return { ...(await super.join(n, e)), mac: MAC.parse('02:00:00:00:00:aa') };
  }
  endpointInfo(_n: unknown, e: { options?: Record<string, unknown> }) {
    return e.options?.[VNI] === undefined ? {} : { vni: e.options[VNI] };
  }
}

function setup(dir: string) {
  const overlay = new OverlayDriver();
  const controller = new Controller({
    store: new Store(dir),
    ipam: new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool)),
    drivers: [overlay, new RecordingDriver('loopback-only', { interface: false, exclusive: true, singleInstance: true })],
    resolver: new FakeNamespaces(),
    log: silentLogger(),
    hostSubnets: async () => [],
    predefined: [
      { name: 'fabric', driver: 'overlay' },
      { name: 'isolated', driver: 'loopback-only' },
    ],
  });
  return { controller, overlay };
}

test('a driver unknown to the core: default network and driver, options, reported info, exclusivity', withDir(async (dir) => {
  const { controller, overlay } = setup(dir);
  await controller.start();
  const n = await controller.createNetwork({ name: 'tenant', subnet: Prefix.parse('10.70.0.0/24') });
  assert.equal(n.driver, 'overlay', 'the default network\'s driver is the default driver');
  const r = await att(controller, { target: { pid: 100 }, network: 'tenant', options: { [VNI]: 42 } });
  assert.equal(r.ipv4, '10.70.0.2/24');
  assert.equal(r.mac, '02:00:00:00:00:aa', 'the MAC the driver chose');
  assert.equal(r.vni, 42, 'the driver\'s operational info');
  assert.deepEqual(overlay.options, [{ [VNI]: 42 }]);
  assert.deepEqual(controller.endpointInfo(controller.endpoints()[0]), { vni: 42 });
  const d = await att(controller, { target: { pid: 200 } });
  assert.equal(d.network, 'fabric', 'no network: the first predefined one');
  await assert.rejects(att(controller, { target: { pid: 300 }, options: { [PORT_MAP]: [] } }), /network fabric \(driver overlay\) cannot publish ports/);
  await assert.rejects(att(controller, { target: { pid: 300 }, mode: 'isolated', options: { [VNI]: 1 } }), InvalidArgumentError);
  const i = await att(controller, { target: { pid: 300 }, mode: 'isolated' });
  assert.equal(i.interface, '');
  await assert.rejects(att(controller, { target: { pid: 300 }, network: 'tenant' }), ConflictError);
  await assert.rejects(att(controller, { target: { pid: 100 }, mode: 'isolated' }), /cannot be on the isolated network and another network at once/);
  await assert.rejects(att(controller, { target: { pid: 400 }, mode: 'none' }), /invalid mode "none": use fabric, isolated or container:/);
  await assert.rejects(controller.createNetwork({ name: 'x', driver: 'loopback-only' }), ForbiddenError);
  await assert.rejects(controller.attach({ target: {}, mode: 'container:100', options: { [VNI]: 1 } }), /sharing another's namespace cannot take the endpoint option/);
}));

test('bridge endpoint options: ports from PORT_MAP; records from before endpoint options are upgraded', () => {
  const request = { proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 };
  const binding = { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 };
  const base: DriverEndpoint = { id: 'e'.repeat(64), name: 'web', networkId: 'n'.repeat(64), ifname: 'eth0', gatewayEndpoint: true, driverState: { hostIfname: 'veth1234567', mac: '02:00:00:00:00:01', ports: [binding] } };
  assert.deepEqual(portRequestsOf({ ...base, options: { [PORT_MAP]: [request] } }), [request]);
  assert.deepEqual(portRequestsOf(base), []);
  const legacy = { ...base, portRequests: [request], ports: [binding] };
  upgradeLegacyEndpoint(legacy);
  assert.deepEqual(legacy.options, { [PORT_MAP]: [request] });
  assert.equal('portRequests' in legacy, false);
  assert.equal('ports' in legacy, false);
  assert.deepEqual(legacy.driverState.ports, [binding], 'the bindings stay where the driver keeps them');
  const current = { ...base, options: { [PORT_MAP]: [request] } };
  upgradeLegacyEndpoint(current);
  assert.deepEqual(current.options, { [PORT_MAP]: [request] }, 'a current record is left as it is');
});
