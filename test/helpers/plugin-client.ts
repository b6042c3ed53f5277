/**
 * A client of netd's Docker plugin socket that calls it as dockerd 20.10 does: POST, `Accept:
 * application/vnd.docker.plugins.v1.2+json`, no Content-Type, the JSON body (`null` for calls without
 * arguments). Answers are returned whatever their status.
 */
import { request } from 'node:http';

export interface PluginAnswer {
  status: number;
  contentType: string;
  body: Record<string, unknown>;
}

export function callPlugin(socketPath: string, call: string, body: unknown = null, opts: { method?: string; raw?: string | Buffer } = {}): Promise<PluginAnswer> {
  return new Promise((resolve, reject) => {
    const data = opts.raw ?? JSON.stringify(body);
    const req = request({ socketPath, path: `/${call}`, method: opts.method ?? 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body: JSON.parse(text) as Record<string, unknown> });
        } catch (err) {
          reject(new Error(`${call}: not JSON (${res.statusCode}): ${text.slice(0, 200)}`, { cause: err }));
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${call}: no answer within 60 s`)));
    req.end(data);
  });
}
