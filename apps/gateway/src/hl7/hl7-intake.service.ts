import { isUtf8 } from 'node:buffer';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import {
  APP_CONFIG,
  DomainError,
  DomainErrorCode,
  OrderStatus,
  SourceChannel,
  createLogger,
  type AppConfig,
} from '@hemato/common';
import {
  Hl7ErrorCode,
  ackWanted,
  buildAck,
  buildOrderResponse,
  checkDeferredZips,
  checkOrderHeader,
  impliedTriggerEvent,
  isEnhancedMode,
  decodeMessage,
  encodingFor,
  headerInCharset,
  parseMessage,
  readHeader,
  readOrderMessage,
  senderAllowed,
  senderHd,
  type AckCode,
  type Hl7Identity,
  type Hl7Issue,
  type Hl7OrderGroup,
  type MshHeader,
  type OrderResponseLine,
  type ParsedOrderMessage,
} from '@hemato/hl7';
import {
  OrderActionsService,
  OrderCodeTable,
  OrderHolds,
  OrderIntakeService,
  OrderTransitions,
  type ActionResult,
  type NewOrderInput,
} from '@hemato/orders';
import { preparedQuery, type InboundMessageEntity } from '@hemato/persistence';
import { MessageSealer } from '@hemato/privacy';
import { DataSource, type EntityManager } from 'typeorm';
import { CommitBatcher } from './commit-batcher';
import { ResultAckIntake } from './result-ack-intake.service';

const log = createLogger('hl7-intake');

/** A message read and validated, waiting for its transaction. */
interface PreparedMessage {
  header: MshHeader;
  encoding: BufferEncoding;
  text: string;
  sender: string;
  parsed: ParsedOrderMessage;
  /** The outcome known before writing (set once: the ACK stored and the ACK sent must be the same). */
  planned?: Outcome;
  /** Its NW placer numbers were checked against those already taken (once: see `refuseTakenPlacers`). */
  placersChecked?: boolean;
  /** Who the order timeline names: the sender's channel, or the admin who replayed the message. */
  actor?: string;
}

interface Outcome {
  replies: string[];
  status: string;
  ackCode: string;
  error: string | null;
}

interface StoredOutcome {
  /** ACK messages to send, in order (enhanced mode may have a commit and an application ACK). */
  replies: string[];
  orderIds: string[];
  /** Orders released from a hold (ORC-1 RL): started again once committed. */
  released?: Array<{ id: string; version: number }>;
}

/** Why a message was not stored: decides AR/CR versus CE and the ERR text. */
type NotStored = 'rejected' | 'unavailable' | 'internal';

/** Largest group commit: bounds transaction time and the ACK latency of the first message in it. */
const MAX_BATCH = 200;
/** Pooled connections left to the rest of the gateway (health, admin, callbacks) by the HL7 batches. */
const POOL_RESERVE = 2;
/** A batch that lost a deadlock or serialization race is run again this many times. */
const RACE_RETRIES = 3;

/** Deadlock or serialization failure: the batch did nothing wrong and can be run again. */
function isRace(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** A unique key refused a row (here: an NW whose placer number is taken, found without the lookup). */
function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === '23505';
}

/** pg / node errors meaning "the database is not there", as opposed to a problem with one message. */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  const code = e?.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code)) return true;
  if (/^(08|57P0|53)/.test(code)) return true; // connection exception, admin shutdown, insufficient resources
  return /connection terminated|timeout exceeded when trying to connect|connection error|not queryable|ECONNREFUSED|Connection terminated unexpectedly|Client was closed|not currently accepting connections/i.test(
    e?.message ?? '',
  );
}

const REJECT = Symbol('reject');

/**
 * HL7 v2 order intake: reads a frame, validates it, stores the raw message, its orders and the ACK
 * in one transaction (group-committed with concurrent messages) and only then answers. A message
 * seen before (same MSH-3|MSH-4 + MSH-10) gets its stored ACK again and creates nothing.
 */
@Injectable()
export class Hl7IntakeService implements OnModuleInit {
  private readonly us: Hl7Identity;
  /**
   * Batches commit in parallel, each on its own pooled connection. A connection's messages always go
   * to the same batcher, so they are applied in the order they arrived.
   */
  private readonly batchers: Array<CommitBatcher<PreparedMessage, StoredOutcome>>;

  constructor(
    private readonly ds: DataSource,
    private readonly intake: OrderIntakeService,
    private readonly codes: OrderCodeTable,
    private readonly transitions: OrderTransitions,
    private readonly sealer: MessageSealer,
    private readonly actions: OrderActionsService,
    private readonly holds: OrderHolds,
    private readonly resultAcks: ResultAckIntake,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'hl7' | 'database' | 'orders'>,
  ) {
    this.us = { application: config.hl7.HL7_SENDING_APP, facility: config.hl7.HL7_SENDING_FACILITY };
    // Group commits in flight (each holds one connection for its transaction). Few and large beats many
    // and small: on 2 cores, 2 in flight gave 1,500 msgs/s where 14 gave 750 (bench:mllp).
    const parallel = Math.max(
      1,
      Math.min(config.hl7.MLLP_COMMIT_CONCURRENCY, config.database.DATABASE_POOL_SIZE - POOL_RESERVE),
    );
    this.batchers = Array.from(
      { length: parallel },
      () => new CommitBatcher<PreparedMessage, StoredOutcome>((items) => this.commit(items), MAX_BATCH),
    );
  }

  onModuleInit(): void {
    // The dashboard's "Replay" of a refused HL7 message runs through this intake.
    this.actions.registerReplayer('hl7', (message, actor) => this.replay(message, actor));
  }

  /** Answers one complete MLLP frame: the encoded ACK(s) to send back. */
  async handleFrame(frame: Buffer, connectionId = 0): Promise<Buffer[]> {
    let header = readHeader(frame);
    if (!header) {
      return this.notStored(null, 'utf8', 'rejected', {
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'MSH' },
        text: 'Not an HL7 v2 message: no MSH segment',
      });
    }
    const encoding = encodingFor(header.characterSet, frame);
    if (!encoding) {
      // Answered in ASCII: its MSH-18 must not claim the character set we could not read (UTF-16, JIS, …).
      return this.notStored({ ...header, characterSet: '' }, 'utf8', 'rejected', {
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'MSH', field: 18 },
        text: `Character set ${header.characterSet} is not supported (ASCII, 8859/1, UNICODE UTF-8)`,
      });
    }
    // Only a frame labelled UTF-8 gets here with bytes that are not (unlabelled ones are read as Latin-1):
    // decoded anyway, each bad byte would become U+FFFD, a name garbled in the stored PID and the result.
    if (encoding === 'utf8' && !isUtf8(frame)) {
      return this.notStored(header, encoding, 'rejected', {
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'MSH', field: 18 },
        text: `The message is not valid UTF-8 as MSH-18 ${header.characterSet} says (send UTF-8, or declare 8859/1)`,
      });
    }
    const text = decodeMessage(frame, encoding);
    // The MSH was read as Latin-1; in UTF-8 a non-ASCII sender or control id needs reading again.
    header = headerInCharset(frame, header, text, encoding);
    if (header.messageCode.toUpperCase() === 'ACK') {
      // The receiver of our results acknowledging an ORU on a connection of its own.
      const refused = this.senderIssue(header);
      if (refused) return this.notStored(header, encoding, 'rejected', refused);
      return this.encode(await this.resultAcks.take(header, text), encoding);
    }
    const read = await this.prepare(header, encoding, text);
    if ('issue' in read) {
      // Without MSH-10 in original mode the answer is AE (nothing stored either way); otherwise AR / CR.
      if (read.missingControlId && !isEnhancedMode(header))
        return this.encode([buildAck({ header, code: 'AE', issues: [read.issue], us: this.us })], encoding);
      return this.notStored(header, encoding, 'rejected', read.issue);
    }
    const batcher = this.batchers[connectionId % this.batchers.length]!;
    const outcome = await batcher.submit(read);
    return this.encode(outcome.replies, encoding);
  }

  /**
   * Checks a decoded message and reads its order groups: the message ready for its transaction, or why it
   * cannot be stored at all (nothing of it is written). Issues that still let it be stored (an unmapped
   * test code, a missing field of an order) are in `parsed.issues`: stored and answered AE.
   */
  private async prepare(
    header: MshHeader,
    encoding: BufferEncoding,
    text: string,
  ): Promise<PreparedMessage | { issue: Hl7Issue; missingControlId?: boolean }> {
    const refused = this.senderIssue(header);
    if (refused) return { issue: refused };
    const typeIssue = checkOrderHeader(header);
    if (typeIssue) return { issue: typeIssue };
    // MSH-9 without its event (`ORM`, some v2.3 senders): ORM has only O01 and OML (here) only O21, so the
    // event is implied, and the ACK says `ACK^O01^ACK` rather than `ACK^^ACK`.
    if (!header.triggerEvent) header = { ...header, triggerEvent: impliedTriggerEvent(header.messageCode) };
    if (text.includes('\0')) {
      // PostgreSQL cannot store a NUL, so a resend would fail the same way: refused for good.
      return { issue: { code: Hl7ErrorCode.DataTypeError, text: 'The message contains NUL bytes' } };
    }
    let parsed: ParsedOrderMessage;
    const readOptions = {
      zipMaxUnpackedBytes: this.config.orders.IMAGE_ZIP_MAX_UNPACKED_BYTES,
      maxImageBytes: this.config.orders.IMAGE_MAX_BYTES,
      allowedImageHosts: this.config.orders.IMAGE_URL_ALLOWED_HOSTS,
      // An inline zip is inflated below, letting the other connections be served meanwhile (a bomb inflates for
      // seconds before it reaches IMAGE_ZIP_MAX_UNPACKED_BYTES).
      zipCheck: 'deferred' as const,
    };
    try {
      const msg = parseMessage(text);
      parsed = readOrderMessage(msg, header, (system, code) => this.codes.tasksFor(system, code), readOptions);
    } catch (err) {
      log.info({ err: (err as Error).message }, 'unparseable HL7 message');
      return { issue: { code: Hl7ErrorCode.DataTypeError, text: 'The message could not be parsed' } };
    }
    if (!header.controlId) {
      // Without MSH-10 the message cannot be deduplicated: refuse it, store nothing (AE in original
      // mode; in enhanced mode a commit reject, CR: nothing was committed).
      return {
        missingControlId: true,
        issue: {
          code: Hl7ErrorCode.RequiredFieldMissing,
          location: { segment: 'MSH', field: 10 },
          text: 'MSH-10 message control id is required',
        },
      };
    }
    await checkDeferredZips(parsed, readOptions);
    const sender = `${header.sendingApplication}|${header.sendingFacility}`;
    return { header, encoding, text, sender, parsed };
  }

  /** Why a sender is refused (not on `MLLP_ALLOWED_SENDERS`), or null. */
  private senderIssue(header: MshHeader): Hl7Issue | null {
    if (senderAllowed(this.config.hl7.MLLP_ALLOWED_SENDERS, header.sendingApplication, header.sendingFacility)) {
      return null;
    }
    log.warn({ app: header.sendingApplication, facility: header.sendingFacility }, 'sender not on the allow-list');
    return {
      code: Hl7ErrorCode.ApplicationInternalError,
      location: { segment: 'MSH', field: 3 },
      text: 'Sending application/facility is not allowed',
    };
  }

  /**
   * Reads a stored message again and stores what it asks for under its existing inbound row: for a message
   * that was refused (AE) — an unmapped test code since mapped, a cancellation that came before its order —
   * once the cause is fixed. Its stored ACK becomes the new outcome, so a resend of the same MSH-10 is
   * answered as the replay was. An accepted message is not replayed: its orders exist.
   */
  async replay(message: InboundMessageEntity, actor: string): Promise<ActionResult> {
    if (message.status === 'accepted')
      return { ok: false, message: 'This message was accepted and its orders exist: replaying it would repeat them' };
    const header = readHeader(message.raw);
    if (!header) return { ok: false, message: 'The stored message has no MSH segment' };
    const read = await this.prepare(header, encodingFor(header.characterSet) ?? 'utf8', message.raw);
    if ('issue' in read) return { ok: false, message: `Still refused: ${read.issue.code} ${read.issue.text}` };
    read.actor = actor;
    const stored = await this.ds.transaction(async (m) => {
      // One replay at a time per message, and none of a message accepted meanwhile.
      const rows: Array<{ status: string }> = await m.query(
        `SELECT status FROM inbound_messages WHERE id = $1 FOR UPDATE`,
        [message.id],
      );
      if (rows[0]?.status !== 'rejected') return null;
      await this.refuseTakenPlacers(m, [read], true);
      const deferred = this.ackAfterWrite(read);
      const out = await this.store(m, read, { id: message.id });
      // Stored ACKs made before the write (`planned`) are not written by `store` for a row it did not insert.
      if (!deferred) await this.storeFinalAcks(m, [{ id: message.id, outcome: read.planned! }]);
      const fillers: Array<{ filler_order_number: string }> = out.orderIds.length
        ? await m.query(`SELECT filler_order_number FROM orders WHERE id = ANY($1::uuid[]) ORDER BY created_at`, [
            out.orderIds,
          ])
        : [];
      return {
        orderIds: out.orderIds,
        released: out.released ?? [],
        fillers: fillers.map((f) => f.filler_order_number),
      };
    });
    if (!stored) return { ok: false, message: 'This message was replayed or accepted meanwhile' };
    if (stored.orderIds.length > 0) await this.intake.afterCommit(stored.orderIds);
    for (const order of stored.released) await this.holds.resume(order);
    log.info(
      { inboundId: message.id, controlId: header.controlId, orders: stored.orderIds.length },
      'HL7 message replayed',
    );
    // The stored outcome says whether it went through (a cancellation can still fail as it is written).
    const after: Array<{ error: string | null }> = await this.ds.query(
      `SELECT error FROM inbound_messages WHERE id = $1`,
      [message.id],
    );
    if (after[0]?.error) return { ok: false, message: `Still refused: ${after[0].error}` };
    const made = stored.fillers.length;
    const cancels = read.parsed.groups.filter((g) => g.control === 'CA' && !g.discontinue).length;
    const discontinued = read.parsed.groups.filter((g) => g.discontinue).length;
    const held = read.parsed.groups.filter((g) => g.control === 'HD').length;
    const released = read.parsed.groups.filter((g) => g.control === 'RL').length;
    const orders = (n: number) => `${n} order${n === 1 ? '' : 's'}`;
    const parts = [
      made > 0 ? `${orders(made)} created (${stored.fillers.join(', ')})` : null,
      cancels > 0 ? `${orders(cancels)} cancelled` : null,
      discontinued > 0 ? `${orders(discontinued)} discontinued` : null,
      held > 0 ? `${orders(held)} put on hold` : null,
      released > 0 ? `${orders(released)} released` : null,
    ].filter(Boolean);
    return { ok: true, message: `Replayed: ${parts.join(', ') || 'nothing to do'}` };
  }

  /** AR for a frame over the size limit (the MSH is read from its first bytes when it is there). */
  oversizeReply(head: Buffer, size: number): Buffer[] {
    const header = readHeader(head);
    return this.notStored(header, 'utf8', 'rejected', {
      code: Hl7ErrorCode.ApplicationInternalError,
      text: `Message of ${size} bytes exceeds the limit of ${this.config.hl7.MLLP_MAX_MESSAGE_BYTES} bytes`,
    });
  }

  /** AR for a frame whose handling failed unexpectedly: the sender should resend, never assume AA. */
  errorReply(frame: Buffer, err: unknown): Buffer[] {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'HL7 frame handling failed');
    return this.notStored(readHeader(frame), 'utf8', 'internal', {
      code: Hl7ErrorCode.ApplicationInternalError,
      text: 'Internal error; resend later',
    });
  }

  private encode(replies: string[], encoding: BufferEncoding): Buffer[] {
    return replies.map((r) => Buffer.from(r, encoding));
  }

  private notStored(header: MshHeader | null, encoding: BufferEncoding, why: NotStored, issue: Hl7Issue): Buffer[] {
    return this.encode(this.notStoredReplies(header, why, issue), encoding);
  }

  /**
   * Original mode: AR. Enhanced mode: CR (unacceptable) or CE (could not commit) when MSH-15 asks for a
   * commit ACK on failure; else, when MSH-16 asks for an application ACK on error, AR (table 0008: enhanced
   * mode application reject) — a sender with MSH-15 NE (or SU) waits for that one, and would wait forever.
   */
  private notStoredReplies(header: MshHeader | null, why: NotStored, issue: Hl7Issue): string[] {
    if (!header || !isEnhancedMode(header)) return [buildAck({ header, code: 'AR', issues: [issue], us: this.us })];
    const code: AckCode = why === 'rejected' ? 'CR' : 'CE';
    if (ackWanted(header.acceptAckType, false)) return [buildAck({ header, code, issues: [issue], us: this.us })];
    return ackWanted(header.applicationAckType, false)
      ? [buildAck({ header, code: 'AR', issues: [issue], us: this.us })]
      : [];
  }

  /**
   * The ACKs for a stored message: original AA/AE, or enhanced CA (per MSH-15) + the application
   * acknowledgement (per MSH-16): ORR^O02 / ORL^O22 with one ORC per order group when the message was
   * read as an order (`order` given), else an AA/AE ACK.
   */
  private replies(
    header: MshHeader,
    code: 'AA' | 'AE',
    issues: Hl7Issue[],
    order?: { lines: OrderResponseLine[]; item: PreparedMessage },
  ): string[] {
    if (!isEnhancedMode(header)) return [buildAck({ header, code, issues, us: this.us })];
    const out: string[] = [];
    if (ackWanted(header.acceptAckType, true)) out.push(buildAck({ header, code: 'CA', us: this.us }));
    if (ackWanted(header.applicationAckType, code === 'AA')) {
      out.push(
        order
          ? buildOrderResponse({
              header,
              code,
              issues,
              us: this.us,
              lines: order.lines,
              patientIds: order.item.parsed.patient?.identifiers,
            })
          : buildAck({ header, code, issues, us: this.us }),
      );
    }
    return out;
  }

  /**
   * Whether the message's ACK can only be made after its orders are written: a cancellation, hold or release
   * may still fail (AE), and an accepted order's application ACK (ORR/ORL) carries the filler numbers assigned
   * on insert. Such a row is inserted as `processing` and updated with its ACK in the same transaction.
   */
  private ackAfterWrite(item: PreparedMessage): boolean {
    const { header, parsed } = item;
    if (parsed.issues.length > 0) return false;
    if (parsed.groups.some((g) => g.control !== 'NW')) return true;
    return isEnhancedMode(header) && ackWanted(header.applicationAckType, true);
  }

  /** Every group of a message we did not take: unable to accept (NW), cancel (CA), discontinue, hold, release. */
  private refusedLines(item: PreparedMessage): OrderResponseLine[] {
    const unable = { NW: 'UA', CA: 'UC', HD: 'UH', RL: 'UR' } as const;
    return item.parsed.refs.map((g) => ({
      control: g.discontinue ? 'UD' : unable[g.control],
      placerOrderNumber: g.placerOrderNumber,
      placerAuthority: g.placerAuthority ?? null,
      test: g.test,
    }));
  }

  /**
   * One transaction for a batch. Optimistic first (no savepoints: fewer round trips); if a message
   * fails, the batch is run again with each message in its own savepoint, so one failure (answered
   * AR) spares the others. Nothing is acknowledged before the COMMIT returned.
   */
  private async commit(items: PreparedMessage[]): Promise<StoredOutcome[]> {
    let isolate = false;
    // First without asking the database which placer numbers are taken (see refuseTakenPlacers): a batch
    // reusing one fails on the orders' unique key and is run again with the lookup, as are all retries.
    let lookup = false;
    let races = 0;
    for (;;) {
      try {
        return await this.commitOnce(items, isolate, lookup);
      } catch (err) {
        if (!lookup) {
          lookup = true;
          if (isUniqueViolation(err)) continue;
        }
        const why: NotStored = isUnavailable(err) ? 'unavailable' : 'internal';
        if (why === 'internal' && isRace(err) && races++ < RACE_RETRIES) continue;
        if (why === 'internal' && items.length > 1 && !isolate) {
          isolate = true;
          continue;
        }
        log.error({ err: (err as Error).message, messages: items.length, why }, 'HL7 batch not committed');
        return items.map((item) => ({ replies: this.failedReplies(item.header, why), orderIds: [] }));
      }
    }
  }

  private async commitOnce(items: PreparedMessage[], isolate: boolean, lookup: boolean): Promise<StoredOutcome[]> {
    const multi = isolate && items.length > 1;
    const results = await this.ds.transaction(async (m) => {
      await this.refuseTakenPlacers(m, items, lookup);
      // Optimistic path: every inbound row of the batch in one INSERT (a round trip per batch, not per message).
      const preInserted = isolate ? null : await this.insertInbound(m, items);
      // New, valid messages that only create orders (the common case): all their orders in one statement.
      const created = new Map<number, Array<{ id: string; filler: string }>>();
      if (preInserted) {
        const batch: Array<{ k: number; input: NewOrderInput }> = [];
        for (const [k, item] of items.entries()) {
          const row = preInserted[k];
          if (!row || item.parsed.issues.length > 0 || !item.parsed.groups.every((g) => g.control === 'NW')) continue;
          created.set(k, []);
          for (const g of item.parsed.groups) batch.push({ k, input: this.orderInput(item, g, row.id) });
        }
        const orders = await this.intake.createMany(
          m,
          batch.map((b) => b.input),
        );
        orders.forEach((o, i) => created.get(batch[i]!.k)!.push({ id: o.id, filler: o.fillerOrderNumber }));
      }
      const out: StoredOutcome[] = new Array<StoredOutcome>(items.length);
      // Accepted messages whose ACK names their orders (enhanced mode's ORR/ORL): made now and stored in one
      // UPDATE before the rest, so a copy of such a message later in this batch replays the real ACK.
      const finals: Array<{ id: string; outcome: Outcome }> = [];
      for (const [k, item] of items.entries()) {
        const done = created.get(k);
        if (!done) continue;
        if (!this.ackAfterWrite(item)) {
          out[k] = { replies: item.planned!.replies, orderIds: done.map((o) => o.id) };
          continue;
        }
        const lines = item.parsed.groups.map((g, i): OrderResponseLine => ({
          control: 'OK',
          placerOrderNumber: g.placerOrderNumber,
          placerAuthority: g.placerAuthority ?? null,
          fillerOrderNumber: done[i]!.filler,
          test: g.test,
        }));
        const final = this.outcome(item, [], lines);
        finals.push({ id: preInserted![k]!.id, outcome: final });
        out[k] = { replies: final.replies, orderIds: done.map((o) => o.id) };
      }
      if (finals.length > 0) await this.storeFinalAcks(m, finals);
      // The others one by one, in arrival order: duplicates, cancellations, rejected messages, isolated retries.
      for (const [k, item] of items.entries()) {
        if (created.has(k)) continue;
        if (multi) await m.query('SAVEPOINT hl7_msg');
        try {
          out[k] = await this.store(m, item, preInserted ? preInserted[k]! : undefined);
          if (multi) await m.query('RELEASE SAVEPOINT hl7_msg');
        } catch (err) {
          if (!multi || isUnavailable(err) || isRace(err)) throw err;
          await m.query('ROLLBACK TO SAVEPOINT hl7_msg');
          log.error({ err: (err as Error).message, controlId: item.header.controlId }, 'HL7 message not stored');
          out[k] = { replies: this.failedReplies(item.header, 'internal'), orderIds: [] };
        }
      }
      return out;
    });
    const orderIds = results.flatMap((r) => r.orderIds);
    for (const order of results.flatMap((r) => r.released ?? [])) {
      // The release is committed; if this is lost the order is `received`, and the reconciler starts it.
      this.holds
        .resume(order)
        .catch((err: unknown) =>
          log.error({ err: (err as Error).message, orderId: order.id }, 'could not start the released order'),
        );
    }
    if (orderIds.length > 0) {
      // Committed: the ACK may go. Starting the lifecycle is best-effort here (the reconciler catches stragglers).
      this.intake
        .afterCommit(orderIds)
        .catch((err: unknown) =>
          log.error({ err: (err as Error).message, orders: orderIds.length }, 'could not start order lifecycle'),
        );
    }
    return results;
  }

  /**
   * A placer number names one order of its sender (HL7's placer order number is unique per placer
   * application): an NW reusing one already taken — stored earlier, or by another message of this batch
   * — would make a second study and a second result. Such a message is refused whole (AE 205) before its
   * ACK is planned. One query per batch. Copies of one message (same MSH-10) are not collisions: they are
   * duplicates, answered with the stored ACK. Two batches racing for one number: the unique key makes one
   * fail (AR, resend later), and its resend is refused here.
   *
   * Without `lookup`, only the batch's own messages are checked against each other, no query: a number
   * taken earlier is rare, and the orders' unique key then fails the transaction, which `commit` runs
   * again with the lookup (that query was a round trip, parsed and planned, in every group commit).
   */
  private async refuseTakenPlacers(m: EntityManager, items: PreparedMessage[], lookup: boolean): Promise<void> {
    const fresh = items.filter((i) => !i.placersChecked && i.parsed.issues.length === 0);
    if (lookup) for (const item of items) item.placersChecked = true;
    const keyed = fresh.flatMap((item) =>
      item.parsed.groups
        .filter((g) => g.control === 'NW')
        .map((g) => ({ item, group: g, key: placerKey(item.sender, g.placerOrderNumber) })),
    );
    if (keyed.length === 0) return;
    // Not a prepared statement: a generic plan made while the table was small stays a sequential scan.
    const taken: Array<{ external_key: string }> = !lookup
      ? []
      : await m.query(`SELECT external_key FROM orders WHERE external_key = ANY($1::text[])`, [
          keyed.map((k) => k.key),
        ]);
    const owner = new Map<string, string>(taken.map((t) => [t.external_key, '']));
    const refused = new Set<PreparedMessage>();
    for (const { item, group, key } of keyed) {
      // The same group of a copy of the same message is no collision (the copy is a duplicate message).
      const self = `${item.sender}\u0000${item.header.controlId}\u0000${group.index}`;
      const first = owner.get(key);
      if (first === undefined) owner.set(key, self);
      if (first === undefined || first === self) continue;
      if (refused.has(item)) continue;
      refused.add(item);
      // A batch run again after the optimistic attempt rolled back: the ACK planned then (AA) was not sent.
      item.planned = undefined;
      item.parsed.issues.push({
        code: Hl7ErrorCode.DuplicateKeyIdentifier,
        location: group.placerAt,
        text: `Placer order number ${group.placerOrderNumber} is already used by another order from this sender`,
      });
    }
  }

  private failedReplies(header: MshHeader, why: 'unavailable' | 'internal'): string[] {
    return this.notStoredReplies(header, why, {
      code: Hl7ErrorCode.ApplicationInternalError,
      text: why === 'unavailable' ? 'Database unavailable; resend later' : 'Internal error; resend later',
    });
  }

  /** The inbound_messages column values of a message (with its ACK when the outcome is known up front). */
  private inboundRow(item: PreparedMessage): unknown[] {
    const { header } = item;
    const planned = this.ackAfterWrite(item) ? null : (item.planned ??= this.plannedOutcome(item));
    // The message and its ACK (an ORR^O02 repeats the PID) are PHI: sealed at rest.
    return [
      item.sender,
      header.controlId,
      `${header.messageCode}^${header.triggerEvent}`,
      this.sealer.seal(item.text),
      planned?.status ?? 'processing',
      planned?.ackCode ?? null,
      planned ? this.sealer.seal(planned.replies.join('\n')) : null,
      planned?.error ?? null,
    ];
  }

  /**
   * Inserts the inbound rows of a batch in one statement. Returns per item its new row id, or null
   * when the (sender, control id) was already there (or came earlier in the same batch): a duplicate.
   */
  private async insertInbound(m: EntityManager, items: PreparedMessage[]): Promise<Array<{ id: string } | null>> {
    // One array per column and unnest(): a short statement whatever the batch size.
    const values = items.map((item) => this.inboundRow(item));
    // Prepared once per connection: the same statement every batch (see preparedQuery).
    const rows: Array<{ id: string; sender: string; control_id: string }> = await preparedQuery(
      m,
      'hl7_insert_inbound',
      `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status, ack_code, ack, error)
       SELECT 'hl7', * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
       ON CONFLICT (sender, control_id) DO NOTHING RETURNING id, sender, control_id`,
      Array.from({ length: 8 }, (_, c) => values.map((row) => row[c])),
    );
    const byKey = new Map(rows.map((r) => [`${r.sender}\u0000${r.control_id}`, r.id]));
    return items.map((item) => {
      const key = `${item.sender}\u0000${item.header.controlId}`;
      const id = byKey.get(key);
      if (id === undefined) return null;
      byKey.delete(key); // a second copy in the same batch is a duplicate of the first
      return { id };
    });
  }

  /**
   * Stores one message's orders or cancellations (and its inbound row, unless the batch inserted it:
   * `preInserted` is then its id, or null for a duplicate).
   */
  private async store(
    m: EntityManager,
    item: PreparedMessage,
    preInserted?: { id: string } | null,
  ): Promise<StoredOutcome> {
    const { header } = item;
    // Mostly the outcome is known before anything is written (AE for the issues found, else AA — and if
    // a write fails the whole transaction rolls back, the ACK with it): the row is inserted with its ACK,
    // no update needed. Otherwise (`ackAfterWrite`) the ACK is made and stored below.
    const deferred = this.ackAfterWrite(item);
    const actsOnOrders = item.parsed.issues.length === 0 && item.parsed.groups.some((g) => g.control !== 'NW');
    const planned = deferred ? null : (item.planned ??= this.plannedOutcome(item));
    const inserted: Array<{ id: string }> =
      preInserted !== undefined
        ? preInserted
          ? [preInserted]
          : []
        : await m.query(
            `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status, ack_code, ack, error)
             VALUES ('hl7', $1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (sender, control_id) DO NOTHING RETURNING id`,
            this.inboundRow(item),
          );
    if (inserted.length === 0) {
      const prev: Array<{ ack: string | null }> = await m.query(
        `SELECT ack FROM inbound_messages WHERE sender = $1 AND control_id = $2`,
        [item.sender, header.controlId],
      );
      log.info({ controlId: header.controlId }, 'duplicate HL7 message: stored ACK replayed');
      const ack = this.sealer.openNullable(prev[0]?.ack);
      if (ack !== null && ack !== undefined) return { replies: ack === '' ? [] : ack.split('\n'), orderIds: [] };
      return {
        replies: this.replies(header, 'AE', [
          {
            code: Hl7ErrorCode.DuplicateKeyIdentifier,
            location: { segment: 'MSH', field: 10 },
            text: 'Duplicate message control id',
          },
        ]),
        orderIds: [],
      };
    }
    const inboundId = inserted[0]!.id;
    if (planned && item.parsed.issues.length > 0) return { replies: planned.replies, orderIds: [] };
    let orderIds: string[] = [];
    let released: Array<{ id: string; version: number }> = [];
    let issues: Hl7Issue[] = [];
    let lines: OrderResponseLine[] = [];
    if (actsOnOrders) await m.query('SAVEPOINT hl7_body');
    try {
      for (const g of item.parsed.groups) {
        const line = {
          placerOrderNumber: g.placerOrderNumber,
          placerAuthority: g.placerAuthority ?? null,
          test: g.test,
        };
        if (g.control === 'NW') {
          const order = await this.intake.create(m, this.orderInput(item, g, inboundId));
          orderIds.push(order.id);
          lines.push({ ...line, control: 'OK', fillerOrderNumber: order.fillerOrderNumber });
        } else {
          const result = await this.actOnOrder(m, item, g);
          if ('issue' in result) {
            issues = [result.issue];
            throw REJECT;
          }
          if (result.released) released.push(result.released);
          const done = { CA: g.discontinue ? 'DR' : 'CR', HD: 'OH', RL: 'OR' } as const;
          lines.push({ ...line, control: done[g.control], fillerOrderNumber: result.fillerOrderNumber });
        }
      }
    } catch (err) {
      if (err !== REJECT) throw err;
      await m.query('ROLLBACK TO SAVEPOINT hl7_body');
      orderIds = [];
      released = [];
      lines = this.refusedLines(item);
    }
    if (planned) return { replies: planned.replies, orderIds, released };
    const final = this.outcome(item, issues, lines);
    await this.storeFinalAcks(m, [{ id: inboundId, outcome: final }]);
    return { replies: final.replies, orderIds, released };
  }

  /** Stores the ACKs made after the orders were written (rows inserted as `processing`), in one statement. */
  private async storeFinalAcks(m: EntityManager, finals: Array<{ id: string; outcome: Outcome }>): Promise<void> {
    await m.query(
      `UPDATE inbound_messages im SET status = u.status, ack_code = u.ack_code, ack = u.ack, error = u.error
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u (id, status, ack_code, ack, error)
        WHERE im.id = u.id`,
      [
        finals.map((f) => f.id),
        finals.map((f) => f.outcome.status),
        finals.map((f) => f.outcome.ackCode),
        finals.map((f) => this.sealer.seal(f.outcome.replies.join('\n'))),
        finals.map((f) => f.outcome.error),
      ],
    );
  }

  /** The outcome of a message whose ACK does not depend on what is written: AE for its issues, else AA. */
  private plannedOutcome(item: PreparedMessage): Outcome {
    const issues = item.parsed.issues;
    return this.outcome(item, issues, issues.length > 0 ? this.refusedLines(item) : []);
  }

  /** The ACK(s) and stored status for a stored message with these issues (none: accepted). */
  private outcome(item: PreparedMessage, issues: Hl7Issue[], lines: OrderResponseLine[]): Outcome {
    const { header } = item;
    const code = issues.length === 0 ? 'AA' : 'AE';
    return {
      replies: this.replies(header, code, issues, { lines, item }),
      status: code === 'AA' ? 'accepted' : 'rejected',
      ackCode: isEnhancedMode(header)
        ? [ackWanted(header.acceptAckType, true) ? 'CA' : null, code].filter(Boolean).join(',')
        : code,
      error: issues.length ? issues.map((i) => `${i.code} ${i.text}`).join('; ') : null,
    };
  }

  /** The order an NW group asks for, as order intake takes it. */
  private orderInput(item: PreparedMessage, g: Hl7OrderGroup, inboundId: string): NewOrderInput {
    const patient = item.parsed.patient;
    if (!patient || !g.test) throw new Error('validated NW group without patient or test');
    const hd = senderHd(item.header);
    return {
      sourceChannel: SourceChannel.Hl7,
      placerOrderNumber: g.placerOrderNumber,
      patient,
      test: g.test,
      tasks: g.tasks,
      externalKey: placerKey(item.sender, g.placerOrderNumber),
      details: {
        ...g.details,
        sender: item.sender,
        // MSH-3/4 whole (universal ids) when they have more than a namespace id: the result's MSH-5/6.
        ...(hd ? { senderHd: hd } : {}),
        controlId: item.header.controlId,
      },
      inboundMessageId: inboundId,
      images: g.images.map((img) =>
        img.kind === 'inline'
          ? { kind: 'inline' as const, name: img.name, data: img.data, mediaType: img.mediaType }
          : { kind: 'url' as const, name: img.name, url: img.url, mediaType: img.mediaType },
      ),
      actor: item.actor ?? 'hl7',
    };
  }

  /**
   * ORC-1 CA/DC, HD or RL on the sender's order with that placer number: cancelled, held or released, if its
   * state allows; else an issue (the message is answered AE, nothing of it applied).
   */
  private async actOnOrder(
    m: EntityManager,
    item: PreparedMessage,
    g: Hl7OrderGroup,
  ): Promise<{ issue: Hl7Issue } | { fillerOrderNumber: string; released?: { id: string; version: number } }> {
    const rows: Array<{ id: string; filler_order_number: string }> = await m.query(
      `SELECT o.id, o.filler_order_number FROM orders o JOIN inbound_messages im ON im.id = o.inbound_message_id
       WHERE o.placer_order_number = $1 AND im.sender = $2 AND o.source_channel = 'hl7'
       ORDER BY o.created_at DESC LIMIT 1`,
      [g.placerOrderNumber, item.sender],
    );
    const id = rows[0]?.id;
    if (!id) {
      return {
        issue: {
          code: Hl7ErrorCode.UnknownKeyIdentifier,
          location: g.placerAt,
          text: `No order with placer number ${g.placerOrderNumber} from this sender`,
        },
      };
    }
    const filler = rows[0]!.filler_order_number;
    if (g.control === 'HD' || g.control === 'RL') {
      const opts = { actor: item.actor ?? 'hl7', reason: `ORC-1 ${g.control}`, manager: m };
      const outcome = g.control === 'HD' ? await this.holds.hold(id, opts) : await this.holds.release(id, opts);
      if (outcome.result === 'held' || outcome.result === 'already_held') return { fillerOrderNumber: filler };
      if (outcome.result === 'released') return { fillerOrderNumber: filler, released: outcome.order };
      return {
        issue: {
          code: Hl7ErrorCode.ApplicationInternalError,
          location: g.controlAt,
          text: `Order ${g.placerOrderNumber} ${g.control === 'HD' ? 'cannot be put on hold' : 'cannot be released'}: ${outcome.message}`,
        },
      };
    }
    const sent = g.discontinue ? 'DC' : 'CA';
    try {
      await this.transitions.move(id, OrderStatus.Cancelled, {
        actor: item.actor ?? 'hl7',
        manager: m,
        detail: { controlId: item.header.controlId, reason: `ORC-1 ${sent}` },
        patch: { failureReason: `${g.discontinue ? 'discontinued' : 'cancelled'} by the placer (ORC-1 ${sent})` },
      });
      return { fillerOrderNumber: rows[0]!.filler_order_number };
    } catch (err) {
      if (err instanceof DomainError && err.code === DomainErrorCode.Conflict) {
        return {
          issue: {
            code: Hl7ErrorCode.ApplicationInternalError,
            location: g.controlAt,
            text: `Order ${g.placerOrderNumber} can no longer be ${g.discontinue ? 'discontinued' : 'cancelled'}: ${err.message}`,
          },
        };
      }
      throw err;
    }
  }
}

/** An HL7 order's unique key (orders.external_key): its sender (MSH-3|MSH-4) and placer number. */
function placerKey(sender: string, placerOrderNumber: string): string {
  return `hl7:${sender}|${placerOrderNumber}`;
}
