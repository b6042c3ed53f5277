/**
 * The OCI hook's reading of the runtime's state and its choice of action, without a daemon: what real runtimes
 * send (runc's createRuntime, podman's poststop without pid) and what a hostile or broken writer could.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { actionOf, attachRequest, parseOciState, readBounded } from '../../src/cli/oci-hook.js';

const noFlags = { publish: [], alias: [] };

describe('oci-hook: the state on stdin', () => {
  test('runc createRuntime state: attach the pid under the id', () => {
    const state = parseOciState('{"ociVersion":"1.0.2-dev","id":"web-1","status":"creating","pid":4242,"bundle":"/b","annotations":{"io.netd.network":"n1"}}');
    assert.deepEqual(state, { id: 'web-1', status: 'creating', pid: 4242, annotations: { 'io.netd.network': 'n1' } });
    assert.equal(actionOf(state, undefined), 'attach');
    assert.equal(actionOf(state, 'createRuntime'), 'attach');
    assert.equal(actionOf(state, 'poststop'), 'detach');
  });

  test('podman/runc poststop state (stopped, no pid; Go omits a zero pid or writes 0): detach', () => {
    for (const text of ['{"ociVersion":"1.0.2","id":"c1","status":"stopped","bundle":"/b"}', '{"id":"c1","status":"stopped","pid":0}', '{"id":"c1"}']) {
      const state = parseOciState(text);
      assert.equal(state.pid, undefined, text);
      assert.equal(actionOf(state, undefined), 'detach', text);
      assert.throws(() => actionOf(state, 'prestart'), /a prestart hook needs a live container/);
    }
  });

  test('hostile or broken states are refused with one line each', () => {
    const bad: [string, RegExp][] = [
      ['', /empty/],
      ['  \n', /empty/],
      ['nope\n\n', /not JSON/],
      ['[]', /not a JSON object/],
      ['null', /not a JSON object/],
      ['{"pid":1}', /id undefined must be/],
      ['{"id":""}', /id "" must be/],
      ['{"id":"../../etc"}', /id "..\/..\/etc" must be/],
      ['{"id":"a b"}', /must be/],
      ['{"id":"-x"}', /must be/],
      [`{"id":"${'a'.repeat(65)}"}`, /must be/],
      ['{"id":42}', /id 42 must be/],
      ['{"id":"c","pid":-1}', /pid -1 is not a positive integer/],
      ['{"id":"c","pid":1.5}', /pid 1.5/],
      ['{"id":"c","pid":"12"}', /pid "12"/],
      ['{"id":"c","pid":4194305}', /pid 4194305/],
      ['{"id":"c","pid":1e400}', /pid null/],
      ['{"id":"c","pid":true}', /pid true/],
      ['{"id":"c","status":"paused"}', /status "paused"/],
      ['{"id":"c","status":7}', /status 7/],
      ['{"id":"c","annotations":[]}', /annotations must be an object/],
      ['{"id":"c","annotations":"x"}', /annotations must be an object/],
      ['{"id":"c","annotations":{"io.netd.network":1}}', /annotation "io.netd.network" is not a string/],
    ];
    for (const [text, why] of bad) {
      assert.throws(() => parseOciState(text), (err: Error) => why.test(err.message) && !err.message.includes('\n') && /^invalid OCI state on stdin: /.test(err.message), JSON.stringify(text));
    }
  });

  test('options: flags win over annotations; annotations are comma-separated; an IPv6 --ip goes to ip6', () => {
    const state = parseOciState(
      JSON.stringify({ id: 'c1', pid: 7, status: 'created', annotations: { 'io.netd.network': ' n2 ', 'io.netd.publish': '8080:80, 53:53/udp', 'io.netd.ip': '192.0.2.9', 'io.netd.aliases': 'a,b,,' } }),
    );
    const fromAnnotations = attachRequest(state, noFlags, 7);
    assert.deepEqual(fromAnnotations.target, { pid: 7 });
    assert.equal(fromAnnotations.name, 'c1');
    assert.equal(fromAnnotations.network, 'n2');
    assert.equal(fromAnnotations.ip, '192.0.2.9');
    assert.deepEqual(fromAnnotations.aliases, ['a', 'b']);
    assert.deepEqual((fromAnnotations.ports as { Port: number; HostPort: number }[]).map((p) => `${p.HostPort}:${p.Port}`), ['8080:80', '53:53']);
    const fromFlags = attachRequest(state, { network: 'n3', publish: ['9090:90'], ip: 'fd00::9', alias: ['z'] }, 7);
    assert.equal(fromFlags.network, 'n3');
    assert.equal(fromFlags.ip, undefined);
    assert.equal(fromFlags.ip6, 'fd00::9');
    assert.deepEqual(fromFlags.aliases, ['z']);
    assert.deepEqual((fromFlags.ports as { Port: number }[]).map((p) => p.Port), [90]);
    const bare = attachRequest(parseOciState('{"id":"c2","pid":8}'), noFlags, 8);
    assert.deepEqual(bare, { target: { pid: 8 }, network: undefined, name: 'c2', aliases: undefined, ports: undefined, labels: { 'io.netd.origin': 'oci-hook' } });
    assert.throws(() => attachRequest(parseOciState('{"id":"c","pid":8,"annotations":{"io.netd.publish":"80:80:80:80"}}'), noFlags, 8), /^InvalidArgumentError: annotation io.netd.publish: invalid published port/);
  });

  test('stdin is bounded in size and in time', async () => {
    const big = new PassThrough();
    const reading = readBounded(big as unknown as NodeJS.ReadStream, 1000, 5000);
    big.write(Buffer.alloc(600));
    big.write(Buffer.alloc(600));
    await assert.rejects(reading, /larger than 1000 bytes/);
    const silent = new PassThrough();
    await assert.rejects(readBounded(silent as unknown as NodeJS.ReadStream, 1000, 50), /no OCI state on stdin within 0.05 s/);
    const ok = new PassThrough();
    const text = readBounded(ok as unknown as NodeJS.ReadStream, 1000, 5000);
    ok.end('{"id":"c"}');
    assert.equal(await text, '{"id":"c"}');
  });
});
