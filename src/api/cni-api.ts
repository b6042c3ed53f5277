/**
 * POST /netd/v1/cni: the CNI plugin's one route. The plugin forwards its environment (the CNI_*
 * variables) and stdin as `{"env": {...}, "stdin": "..."}`; the answer is 200 with what the plugin prints
 * (ADD's result, VERSION's), 204 when there is nothing to print (DEL, CHECK, GC, STATUS), or the CNI
 * error object with a fitting status — this route answers in CNI's error format, as the Docker routes
 * answer in Docker's.
 */
import type { Controller } from '../cnm/controller.js';
import type { Logger } from '../log.js';
import { CniService } from '../cni/service.js';
import { CNI_CODE, CniError } from '../cni/errors.js';
import { LATEST_VERSION } from '../cni/version.js';
import type { Router } from './http.js';

export function addCniRoutes(router: Router, controller: Controller, log: Logger): void {
  const service = new CniService(controller, log);
  router.add('POST', '/netd/v1/cni', async (req) => {
    let request: unknown;
    try {
      request = await req.body();
    } catch (err) {
      // A body that is not JSON, or too large: still CNI's error format.
      const e = new CniError(CNI_CODE.DECODE_FAILURE, `cannot read the request: ${(err as Error).message}`, undefined, { status: (err as { status?: number }).status ?? 400 });
      return { status: e.status, body: e.toBody(LATEST_VERSION) };
    }
    return service.handle(request);
  });
}
