import type { Response } from 'express';

/**
 * Sends a FHIR JSON body. Express would add an ETag hashed from the body to anything sent with
 * `res.send`; on /fhir an ETag is a resource's version (`W/"<versionId>"`, set by the caller), and what has
 * no version (a Task, a searchset, an OperationOutcome, the CapabilityStatement) carries none. A body with
 * our version ETag still goes through `res.send`, which answers a matching If-None-Match with 304.
 */
export function sendFhir(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  const text = JSON.stringify(body);
  res.status(status).setHeader('Content-Type', 'application/fhir+json; charset=utf-8');
  if (res.getHeader('ETag')) {
    res.send(text);
    return;
  }
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
