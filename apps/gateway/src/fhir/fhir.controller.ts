import { Body, Controller, Get, Headers, Inject, Param, Post, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { APP_CONFIG, DomainError, type AppConfig } from '@hemato/common';
import {
  BundleResolver,
  FhirOperationError,
  assertStorableText,
  buildCapabilityStatement,
  decodeSearchCursor,
  encodeSearchCursor,
  fromDomainError,
  holdsNoImage,
  isShapeTypeError,
  wrongShape,
  operationOutcome,
  parseSearch,
  preferredHandling,
  type EhrClient,
  type ParsedServiceRequest,
  type SearchCursor,
} from '@hemato/fhir';
import type { Bundle, BundleEntry, Reference, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { Request, Response } from 'express';
import { EHR_CLIENT } from './ehr-client.provider';
import { FhirAuthGuard, FhirScope, type FhirRequest } from './fhir-auth.guard';
import { FhirExceptionFilter } from './fhir-exception.filter';
import { FhirOrderIntakeUseCase, type IntakeResult } from './fhir-order-intake.use-case';
import { FhirOrdersRepository } from './fhir-orders.repository';
import { FhirReadService } from './fhir-read.service';
import { sendFhir } from './fhir-response';

const IMAGE_TYPES = ['Media', 'DocumentReference', 'Binary'];

function send(
  res: Response,
  status: number,
  body: unknown,
  headers: Record<string, string> | ((body: any) => Record<string, string>) = {},
): void {
  sendFhir(res, status, body, typeof headers === 'function' ? headers(body) : headers);
}

/** The `return` preference of a `Prefer` header (`return=minimal|representation|OperationOutcome`), if any. */
function preferredReturn(
  header: string | string[] | undefined,
): 'minimal' | 'representation' | 'OperationOutcome' | undefined {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  for (const part of text.split(/[,;]/)) {
    const [k, v] = part.split('=').map((x) => x.trim().replace(/^"|"$/g, ''));
    if (k?.toLowerCase() !== 'return') continue;
    if (v === 'minimal' || v === 'representation' || v === 'OperationOutcome') return v;
  }
  return undefined;
}

/**
 * A versioned resource's ETag is its version (`W/"<versionId>"`, not a hash of the body, so a client
 * revalidating or vreading goes by the version) and Last-Modified its `meta.lastUpdated`.
 */
function versionHeaders(r: Resource): Record<string, string> {
  const h: Record<string, string> = {};
  if (r.meta?.versionId) h.ETag = `W/"${r.meta.versionId}"`;
  if (r.meta?.lastUpdated) h['Last-Modified'] = new Date(r.meta.lastUpdated).toUTCString();
  return h;
}

/**
 * A request body must be FHIR JSON: `application/fhir+json` or `application/json` (or DSTU2's
 * `application/json+fhir`, which older clients still send), parameters (charset, fhirVersion) allowed.
 * Anything else is never parsed, so it answers 415 rather than "no body" (400).
 */
const FHIR_JSON_BODY_TYPES = new Set(['application/fhir+json', 'application/json', 'application/json+fhir']);
function assertJsonBody(req: Request): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!FHIR_JSON_BODY_TYPES.has(type)) {
    throw new FhirOperationError(
      415,
      operationOutcome('error', 'not-supported', 'Content-Type must be application/fhir+json or application/json'),
    );
  }
}

export function fhirBase(req: Request): string {
  return `${req.protocol}://${req.get('host')}/fhir`;
}

/** FHIR R4 order intake (POST ServiceRequest, POST Bundle), CapabilityStatement and the read API. */
@Controller('fhir')
@UseFilters(FhirExceptionFilter)
export class FhirController {
  constructor(
    private readonly intake: FhirOrderIntakeUseCase,
    private readonly read: FhirReadService,
    private readonly repo: FhirOrdersRepository,
    @Inject(EHR_CLIENT) private readonly ehr: EhrClient | null,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir' | 'security'>,
  ) {}

  @Get('metadata')
  metadata(@Req() req: Request, @Res() res: Response) {
    send(
      res,
      200,
      buildCapabilityStatement({
        baseUrl: fhirBase(req),
        software: { name: 'hemato-bridge', version: process.env.npm_package_version ?? '0.1.0' },
        smart: !!this.config.fhir.FHIR_JWKS_URL,
      }),
    );
  }

  @Post('ServiceRequest')
  @UseGuards(FhirAuthGuard)
  @FhirScope('ServiceRequest', 'c')
  async createServiceRequest(
    @Body() body: unknown,
    @Headers('if-none-exist') ifNoneExist: string | undefined,
    @Req() req: FhirRequest,
    @Res() res: Response,
  ) {
    assertJsonBody(req);
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw FhirOperationError.invalid(
        'Body must be a ServiceRequest (application/fhir+json)',
        'ServiceRequest',
        'structure',
      );
    }
    assertStorableText(body, 'ServiceRequest');
    const r = await this.intake.execute(body as ServiceRequest, {
      resolver: new BundleResolver(undefined, this.ehr ?? undefined),
      caller: req.fhirClient!,
      ifNoneExist,
      raw: JSON.stringify(body),
    });
    const status = r.created ? 201 : 200;
    const srUrl = `${fhirBase(req)}/ServiceRequest/${r.order.id}`;
    // Location names the version as it is now: a repeated revoke answered 200 names version 2, not 1.
    const location = `${srUrl}/_history/${await this.read.serviceRequestVersion(r.order)}`;
    switch (preferredReturn(req.headers.prefer)) {
      case 'representation': {
        // The ServiceRequest as we keep it, at its current version (a revoke answered here is version 2).
        const sr = await this.read.serviceRequestById(r.order.id, req.fhirClient!);
        send(res, status, sr, { ...versionHeaders(sr), Location: `${srUrl}/_history/${sr.meta!.versionId}` });
        return;
      }
      case 'minimal':
        res.setHeader('Location', location);
        res.status(status).end();
        return;
      case 'OperationOutcome':
        send(res, status, takenInOutcome(r), { Location: location });
        return;
      case undefined:
        // No preference: the Task that tracks the order (what this endpoint has always answered).
        send(res, status, await this.read.task(r.order), {
          Location: location,
          'Content-Location': `${fhirBase(req)}/Task/${r.order.id}`,
        });
    }
  }

  @Post()
  @UseGuards(FhirAuthGuard)
  @FhirScope('ServiceRequest', 'c')
  async bundle(@Body() body: unknown, @Req() req: FhirRequest, @Res() res: Response) {
    assertJsonBody(req);
    const bundle = body as Bundle;
    if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') {
      throw FhirOperationError.invalid('Body must be a Bundle', 'Bundle', 'structure');
    }
    if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
      throw FhirOperationError.invalid('Bundle.type must be transaction or batch', 'Bundle.type', 'value');
    }
    // Refused whole (naming the element), before any entry of a batch is stored.
    assertStorableText(bundle, 'Bundle');
    const entries = bundle.entry ?? [];
    if (!Array.isArray(entries))
      throw FhirOperationError.invalid('Bundle.entry must be an array', 'Bundle.entry', 'structure');
    // bdl-7: a fullUrl names one resource in the Bundle (entries with it must be versions of it): two under one
    // fullUrl would leave a reference to either (the order's patient) to whichever came last.
    const seen = new Map<string, Set<string | undefined>>();
    entries.forEach((e, i) => {
      const url = e && typeof e === 'object' ? e.fullUrl : undefined;
      if (typeof url !== 'string' || url === '') return;
      const version = e.resource?.meta?.versionId;
      const versions = seen.get(url) ?? new Set<string | undefined>();
      if (versions.size > 0 && (version === undefined || versions.has(version) || versions.has(undefined))) {
        throw FhirOperationError.invalid(
          'This fullUrl is already that of an earlier entry: each resource in a Bundle needs its own (bdl-7)',
          `Bundle.entry[${i}].fullUrl`,
          'invalid',
        );
      }
      versions.add(version);
      seen.set(url, versions);
    });
    // Entries asking for what we do not serve (a read, a delete, an update of a ServiceRequest): a transaction
    // is refused whole, a batch answers them in their own response and goes on with the others.
    const refused = new Map<number, FhirOperationError>();
    entries.forEach((e, i) => {
      if (!e || typeof e !== 'object') throw FhirOperationError.required(`Bundle.entry[${i}].resource`);
      const err = entryRequestError(e, i);
      if (err && bundle.type === 'transaction') throw err;
      if (err) refused.set(i, err);
      else if (!e.resource?.resourceType) throw FhirOperationError.required(`Bundle.entry[${i}].resource`);
    });
    const usable: BundleEntry[] = entries.map((e, i) => (refused.has(i) ? {} : e));
    const srIndexes = usable
      .map((e, i) => (e.resource?.resourceType === 'ServiceRequest' ? i : -1))
      .filter((i) => i >= 0);
    if (srIndexes.length === 0)
      throw FhirOperationError.unprocessable('The Bundle holds no ServiceRequest', 'Bundle.entry');
    const resolver = new BundleResolver(bundle, this.ehr ?? undefined);
    let linked: ReturnType<typeof linkImages>;
    try {
      linked = linkImages(usable, srIndexes);
    } catch (err) {
      // An image's basedOn or content of the wrong JSON type (a string, null): malformed, 400 (it was 500).
      if (isShapeTypeError(err)) throw wrongShape('Bundle.entry');
      throw err;
    }
    const { withImages, orphans } = linked;
    const orphanError = (i: number) =>
      FhirOperationError.unprocessable(
        "This image belongs to none of the Bundle's ServiceRequests: list it in a ServiceRequest.supportingInfo " +
          'or point its basedOn at one (it needs a fullUrl or id to be referenced)',
        `Bundle.entry[${i}]`,
      );
    const base = fhirBase(req);
    const caller = req.fhirClient!;
    const raw = JSON.stringify(bundle);
    const results = new Map<number, IntakeResult | FhirOperationError>(refused);

    if (bundle.type === 'transaction') {
      // All or nothing: an image no order takes is refused with the Bundle rather than dropped.
      if (orphans.length > 0) throw orphanError(orphans[0]!);
      // Check every ServiceRequest first, then store them in one database transaction.
      const parsed = new Map<number, ParsedServiceRequest>();
      for (const i of srIndexes) {
        parsed.set(
          i,
          await this.intake.parse(withImages.get(i)!, {
            resolver,
            caller,
            ifNoneExist: entries[i]!.request?.ifNoneExist,
            path: `Bundle.entry[${i}].resource`,
          }),
        );
      }
      const keys = new Map<string, number>();
      for (const [i, p] of parsed) {
        if (!p.externalKey) continue;
        if (keys.has(p.externalKey)) {
          throw FhirOperationError.invalid(
            `Same identifier as Bundle.entry[${keys.get(p.externalKey)}]`,
            `Bundle.entry[${i}].resource.identifier`,
            'duplicate',
          );
        }
        keys.set(p.externalKey, i);
      }
      const storeAll = () =>
        this.repo.transaction(async (manager) => {
          for (const [i, p] of parsed)
            results.set(
              i,
              await this.intake.store(p, { resolver, caller, raw, manager, path: `Bundle.entry[${i}].resource` }),
            );
        });
      try {
        await storeAll();
      } catch (err) {
        // Another request stored one of these identifiers meanwhile: once more, and it is found as existing.
        if ((err as { driverError?: { code?: string } })?.driverError?.code !== '23505') throw err;
        results.clear();
        await storeAll();
      }
      await this.intake.afterCommitOf(
        [...results.values()].filter((r): r is IntakeResult => !(r instanceof FhirOperationError)),
      );
    } else {
      for (const i of orphans) results.set(i, orphanError(i));
      for (const i of srIndexes) {
        try {
          results.set(
            i,
            await this.intake.execute(withImages.get(i)!, {
              resolver,
              caller,
              ifNoneExist: entries[i]!.request?.ifNoneExist,
              raw,
              path: `Bundle.entry[${i}].resource`,
            }),
          );
        } catch (err) {
          // A batch answers each entry on its own: one entry's refusal (an image too large, not an image)
          // is that entry's response, while the entries before it stay committed and reported.
          if (err instanceof FhirOperationError) results.set(i, err);
          else if (err instanceof DomainError) results.set(i, fromDomainError(err));
          else throw err;
        }
      }
    }

    const out: BundleEntry[] = [];
    const prefer = preferredReturn(req.headers.prefer);
    for (const [i] of entries.entries()) {
      const r = results.get(i);
      if (!r) {
        out.push({
          response: {
            status: '200 OK',
            outcome: operationOutcome('information', 'informational', 'Taken in with the order'),
          },
        });
      } else if (r instanceof FhirOperationError) {
        out.push({ response: { status: String(r.status), outcome: r.outcome } });
      } else {
        const version = await this.read.serviceRequestVersion(r.order);
        const srUrl = `${base}/ServiceRequest/${r.order.id}`;
        const response = {
          status: r.created ? '201 Created' : '200 OK',
          location: `${srUrl}/_history/${version}`,
          etag: `W/"${version}"`,
        };
        // Prefer applies to each entry as to a single create; without one, the Task (as always).
        switch (prefer) {
          case 'minimal':
            out.push({ response });
            break;
          case 'OperationOutcome':
            out.push({ response: { ...response, outcome: takenInOutcome(r) } });
            break;
          case 'representation':
            out.push({ fullUrl: srUrl, resource: await this.read.serviceRequestById(r.order.id, caller), response });
            break;
          case undefined:
            out.push({ fullUrl: `${base}/Task/${r.order.id}`, resource: await this.read.task(r.order), response });
        }
      }
    }
    send(res, 200, { resourceType: 'Bundle', type: `${bundle.type}-response`, entry: out });
  }

  @Get('Task/:id')
  @UseGuards(FhirAuthGuard)
  @FhirScope('Task', 'r')
  async task(@Param('id') id: string, @Req() req: FhirRequest, @Res() res: Response) {
    send(res, 200, await this.read.taskById(id, req.fhirClient!));
  }

  @Get('Task')
  @UseGuards(FhirAuthGuard)
  @FhirScope('Task', 's')
  async searchTask(@Req() req: FhirRequest, @Res() res: Response) {
    await this.search('Task', req, res);
  }

  @Get('ServiceRequest/:id')
  @UseGuards(FhirAuthGuard)
  @FhirScope('ServiceRequest', 'r')
  async serviceRequest(@Param('id') id: string, @Req() req: FhirRequest, @Res() res: Response) {
    send(res, 200, await this.read.serviceRequestById(id, req.fhirClient!), versionHeaders);
  }

  /** vread: e.g. the versioned URL our create answers in `Location` (`…/_history/1`). */
  @Get('ServiceRequest/:id/_history/:vid')
  @UseGuards(FhirAuthGuard)
  @FhirScope('ServiceRequest', 'r')
  async serviceRequestVersion(
    @Param('id') id: string,
    @Param('vid') vid: string,
    @Req() req: FhirRequest,
    @Res() res: Response,
  ) {
    send(res, 200, await this.read.serviceRequestById(id, req.fhirClient!, vid), versionHeaders);
  }

  @Get('DiagnosticReport/:id')
  @UseGuards(FhirAuthGuard)
  @FhirScope('DiagnosticReport', 'r')
  async diagnosticReport(@Param('id') id: string, @Req() req: FhirRequest, @Res() res: Response) {
    // Its version is the report's (a revision is a new one): ETag W/"<version>".
    send(res, 200, await this.read.diagnosticReportById(id, req.fhirClient!), versionHeaders);
  }

  @Get('DiagnosticReport')
  @UseGuards(FhirAuthGuard)
  @FhirScope('DiagnosticReport', 's')
  async searchDiagnosticReport(@Req() req: FhirRequest, @Res() res: Response) {
    await this.search('DiagnosticReport', req, res);
  }

  /**
   * A search: the parameters the CapabilityStatement lists for the type, combined (AND; a comma-separated
   * value is OR). Others are ignored and left out of the `self` link, which names what was applied; under
   * `Prefer: handling=strict` they answer 400. Paged: `_count` a page (default and most SEARCH_PAGE_MAX,
   * 0 for the total alone); `next`/`previous` links carry a signed keyset `_cursor` (after the page's last
   * row, before its first), so orders arriving while a client pages neither repeat nor hide entries;
   * `_offset` still starts a page where it says. `total` counts every match.
   */
  private async search(type: 'Task' | 'DiagnosticReport', req: FhirRequest, res: Response): Promise<void> {
    const parsed = parseSearch(type, req.query as Record<string, unknown>, preferredHandling(req.headers.prefer), [
      ...PAGING_PARAMS,
    ]);
    // `_summary=count`: the total alone (as `_count=0`); `_summary=false` is the full resources, as always.
    const summary = parsed.criteria.get('_summary')?.at(-1)?.join(',');
    if (summary !== undefined && summary !== 'count' && summary !== 'false') {
      throw FhirOperationError.invalid(
        `_summary=${summary.slice(0, 40)} is not supported (count or false)`,
        undefined,
        'value',
      );
    }
    const count =
      summary === 'count' ? 0 : Math.min(pagingValue(parsed.criteria, '_count') ?? SEARCH_PAGE_MAX, SEARCH_PAGE_MAX);
    const offset = pagingValue(parsed.criteria, '_offset');
    const criteria = parsed.applied.filter(([k]) => !PAGING_PARAMS.has(k));
    const scope = { type, client: req.fhirClient!.id, criteria };
    const secret = this.config.security.CALLBACK_SIGNING_SECRET;
    const cursorText = parsed.criteria.get('_cursor')?.at(-1)?.join(',');
    if (cursorText !== undefined && offset !== undefined) {
      throw FhirOperationError.invalid('Send _cursor or _offset, not both', undefined, 'value');
    }
    const cursor = cursorText === undefined ? undefined : decodeSearchCursor(secret, scope, cursorText);
    const base = fhirBase(req);
    const found = await this.read.search(type, parsed.criteria, req.fhirClient!, { offset, cursor, limit: count });
    const bundle = absolutise(found.bundle, base);
    const url = (paging: Array<[string, string]>) =>
      `${base}/${type}?${new URLSearchParams([...criteria, ...paging]).toString()}`;
    const withCursor = (c: SearchCursor): Array<[string, string]> => [
      ['_count', String(count)],
      ['_cursor', encodeSearchCursor(secret, scope, c)],
    ];
    const self: Array<[string, string]> = [];
    if (summary !== undefined) self.push(['_summary', summary]);
    else if (parsed.criteria.has('_count')) self.push(['_count', String(count)]);
    if (offset) self.push(['_offset', String(offset)]);
    if (cursorText !== undefined) self.push(['_cursor', cursorText]);
    const link = [{ relation: 'self', url: url(self) }];
    const { first, last, hasBefore, hasAfter } = found.page;
    if (count > 0 && hasAfter && last)
      link.push({ relation: 'next', url: url(withCursor({ direction: 'after', ...last })) });
    if (count > 0 && hasBefore && first) {
      link.push({ relation: 'previous', url: url(withCursor({ direction: 'before', ...first })) });
    }
    // Lenient handling: what was ignored is also said in words, as an outcome entry (no match, not in total).
    const ignored: BundleEntry[] = parsed.ignored.length
      ? [
          {
            resource: {
              resourceType: 'OperationOutcome',
              issue: [
                {
                  severity: 'warning',
                  code: 'not-supported',
                  diagnostics: `Search parameters ignored (not supported here): ${parsed.ignored.map((n) => n.slice(0, 64)).join(', ')}`,
                },
              ],
            },
            search: { mode: 'outcome' },
          },
        ]
      : [];
    const entry = [...(bundle.entry ?? []), ...ignored];
    send(res, 200, { ...bundle, link, ...(entry.length ? { entry } : {}) });
  }
}

/** `Prefer: return=OperationOutcome` for a ServiceRequest taken in: created, or known already. */
function takenInOutcome(r: IntakeResult) {
  return operationOutcome(
    'information',
    'informational',
    r.created ? `Created ServiceRequest/${r.order.id}` : `ServiceRequest/${r.order.id} was already taken in`,
  );
}

const UNSERVED_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'PATCH']);

/**
 * Why a Bundle entry's `request` asks for what we do not do, if it does: ServiceRequest has create (POST)
 * only, to `ServiceRequest` (relative or under a base); no entry may read, delete or patch. An entry without
 * `request` (or `method`) is taken as a create, as we always did. The Patient, Specimen and images around
 * an order are read from the Bundle whether POSTed or PUT.
 */
function entryRequestError(e: BundleEntry, i: number): FhirOperationError | undefined {
  const request = e.request as unknown;
  if (request === undefined || request === null) return undefined;
  const at = `Bundle.entry[${i}].request`;
  if (typeof request !== 'object' || Array.isArray(request)) return wrongShape(at);
  const { method, url } = request as { method?: unknown; url?: unknown };
  if (method !== undefined && method !== null && typeof method !== 'string') return wrongShape(`${at}.method`);
  if (url !== undefined && url !== null && typeof url !== 'string') return wrongShape(`${at}.url`);
  const m = (method ?? 'POST').toUpperCase();
  const type = e.resource?.resourceType;
  if (UNSERVED_METHODS.has(m) || (type === 'ServiceRequest' && m !== 'POST')) {
    return FhirOperationError.invalid(
      `${m} ${String(url ?? '').slice(0, 100)} is not supported here: a ServiceRequest can only be created (POST ServiceRequest; to cancel, POST it with status revoked)`,
      `${at}.method`,
      'not-supported',
    );
  }
  if (type === 'ServiceRequest' && url && !/(^|\/)ServiceRequest\/?$/.test(url.split('?')[0]!)) {
    return FhirOperationError.invalid(
      `A ServiceRequest is POSTed to ServiceRequest, not ${url.slice(0, 100)}`,
      `${at}.url`,
      'invalid',
    );
  }
  return undefined;
}

/** The most entries a searchset page holds, and how many it holds without `_count`. */
export const SEARCH_PAGE_MAX = 100;

/** Result parameters: how a search is paged, not what it matches (left out of what a cursor is bound to). */
const PAGING_PARAMS = new Set(['_count', '_offset', '_cursor', '_summary']);

/** `_count` / `_offset`: a non-negative integer (the last one, if repeated), else 400. */
function pagingValue(criteria: Map<string, string[][]>, name: '_count' | '_offset'): number | undefined {
  const v = criteria.get(name)?.at(-1)?.join(',');
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v)) {
    throw FhirOperationError.invalid(`${name} must be a non-negative integer`, undefined, 'value');
  }
  return Number(v);
}

function absolutise(b: Bundle, base: string): Bundle {
  return { ...b, entry: b.entry?.map((e) => ({ ...e, fullUrl: e.fullUrl ? `${base}/${e.fullUrl}` : undefined })) };
}

/**
 * Images in a Bundle need not be listed in `supportingInfo`: a Media/DocumentReference/Binary whose
 * `basedOn` names the ServiceRequest, or any of them when the Bundle has one ServiceRequest, is
 * added to it. `orphans` are the entries of images that no ServiceRequest takes (several
 * ServiceRequests and no `basedOn` naming one, or no fullUrl/id to reference it by).
 */
function linkImages(
  entries: BundleEntry[],
  srIndexes: number[],
): { withImages: Map<number, ServiceRequest>; orphans: number[] } {
  const out = new Map<number, ServiceRequest>();
  const keyOf = (e: BundleEntry) =>
    e.fullUrl ?? (e.resource?.id ? `${e.resource.resourceType}/${e.resource.id}` : undefined);
  // Every way a reference inside the Bundle can name an entry (its fullUrl or Type/id).
  const namesOf = (e: BundleEntry) =>
    [e.fullUrl, e.resource?.id ? `${e.resource.resourceType}/${e.resource.id}` : undefined].filter(Boolean);
  const referenced = new Set<string>();
  for (const i of srIndexes) {
    for (const s of (entries[i]!.resource as ServiceRequest).supportingInfo ?? [])
      if (s.reference) referenced.add(s.reference);
  }
  // A Binary that a Media or DocumentReference points at is read through it, not counted twice.
  for (const e of entries) {
    const r = e.resource as { content?: { url?: string } | Array<{ attachment?: { url?: string } }> } | undefined;
    const urls = Array.isArray(r?.content) ? r.content.map((c) => c.attachment?.url) : [r?.content?.url];
    for (const u of urls) if (u) referenced.add(u);
  }
  const taken = new Set<number>();
  for (const i of srIndexes) {
    const sr = entries[i]!.resource as ServiceRequest;
    const srKeys = [keyOf(entries[i]!), sr.id ? `ServiceRequest/${sr.id}` : undefined].filter(Boolean);
    const extra: Reference[] = [];
    for (const [j, e] of entries.entries()) {
      const r = e.resource as (Resource & { basedOn?: Reference[] }) | undefined;
      if (!r || !IMAGE_TYPES.includes(r.resourceType)) continue;
      if (namesOf(e).some((k) => referenced.has(k!))) {
        taken.add(j);
        continue;
      }
      const key = keyOf(e);
      if (!key) continue;
      const basedOn = (r.basedOn ?? []).some((b) => srKeys.includes(b.reference));
      if (basedOn || srIndexes.length === 1) {
        extra.push({ reference: key });
        taken.add(j);
      }
    }
    out.set(i, extra.length ? { ...sr, supportingInfo: [...(sr.supportingInfo ?? []), ...extra] } : sr);
  }
  // An image no ServiceRequest takes would be dropped unnoticed: the caller refuses it. A document declared as
  // no image (a PDF, a note) is not one.
  const orphans = [...entries.keys()].filter((j) => {
    const r = entries[j]!.resource;
    return !!r && IMAGE_TYPES.includes(r.resourceType) && !taken.has(j) && !holdsNoImage(r);
  });
  return { withImages: out, orphans };
}
