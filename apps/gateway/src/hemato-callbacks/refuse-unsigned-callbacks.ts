import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLogger } from '@hemato/common';
import { parseCallbackPath, verifyCallbackSignature } from '@hemato/hemato-client';

const log = createLogger('hemato-callback');

/**
 * Express middleware mounted on the callback prefix ahead of the body parser: a callback whose URL
 * signature is wrong or expired is answered 401 from its URL alone, its body never read or parsed.
 * The reference wants the signature in the URL for exactly this "early filtration of incoming traffic"
 * when rogue requests pour in. Well-signed callbacks go on to the parser and the controller (which
 * checks the signature again).
 */
export function refuseUnsignedCallbacks(secret: string) {
  return (req: IncomingMessage & { originalUrl?: string }, res: ServerResponse, next: () => void): void => {
    if (req.method !== 'POST') return next();
    const parts = parseCallbackPath(req.originalUrl ?? req.url ?? '');
    // Not the callback route's shape: routing answers it as usual.
    if (!parts) return next();
    const check = verifyCallbackSignature(secret, parts.studyId, parts.expires, parts.signature);
    if (check.ok) return next();
    log.warn({ reason: check.reason }, 'callback refused');
    const body = JSON.stringify({
      statusCode: 401,
      message: `Callback signature refused: ${check.reason}`,
      error: 'Unauthorized',
    });
    // The body is not wanted: close the connection rather than read it.
    res.writeHead(401, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  };
}
