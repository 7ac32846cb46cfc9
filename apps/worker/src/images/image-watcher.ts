import { createReadStream, type Dirent } from 'node:fs';
import { lstat, mkdir, readdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, DomainError, DomainErrorCode, createLogger, type AppConfig } from '@hemato/common';
import { ImageCutShortError, ImageIntakeService, OPEN_FOR_IMAGES, OrderTransitions } from '@hemato/orders';
import { OrderEntity } from '@hemato/persistence';
import { DataSource } from 'typeorm';

const log = createLogger('image-watcher');

/** Whether there is an entry of that name (a dangling symbolic link counts: it is not followed). */
const exists = (file: string) =>
  lstat(file).then(
    () => true,
    () => false,
  );
/** A file's size; null when it is no longer there. */
async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

const SCAN_MS = 2000;
const IMAGE_FILE = /\.(jpe?g|png|zip)$/i;

/**
 * What a drop folder entry is when it is not a regular file (nor a folder), said in a refusal; null for a
 * regular file or a folder. Such an entry is never opened (a FIFO's read waits for a writer, and the scan
 * with it) nor followed (a symbolic link may lead anywhere the worker can read).
 */
function notARegularFile(e: Dirent): string | null {
  if (e.isFile() || e.isDirectory()) return null;
  if (e.isSymbolicLink()) return 'a symbolic link';
  if (e.isFIFO()) return 'a named pipe';
  if (e.isSocket()) return 'a socket';
  if (e.isBlockDevice() || e.isCharacterDevice()) return 'a device';
  return 'of an unknown kind';
}

/**
 * What a file will never get past (its name, type or size, a name taken by other bytes, an order that
 * takes no more images): it is set aside in `.rejected/`. Anything else (the image store or the database
 * failing) is passing trouble: the file stays and is tried again.
 */
const REFUSED = new Set<DomainErrorCode>([
  DomainErrorCode.Invalid,
  DomainErrorCode.Unsupported,
  DomainErrorCode.TooLarge,
  DomainErrorCode.Conflict,
]);

/**
 * The drop folder: `<IMAGE_WATCH_DIR>/<placer or filler number>/<image>`. A file is taken once it is not
 * empty and its size has not changed between two scans (a scanner may still be writing it), added to the
 * order, and moved to `<folder>/.done/`. A file refused for itself goes to `.rejected/`, with the reason on
 * the order's timeline; one the store or the database could not take stays and is tried again, and so does
 * one cut short (a writer pausing mid-file), once its size changes. An entry with an image's name that is
 * not a regular file (a symbolic link, a FIFO) goes to `.rejected/` at once, unread. A
 * `COMPLETE` file in the folder marks the order's images complete.
 */
@Injectable()
export class ImageWatcher implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;
  private readonly sizes = new Map<string, number>();
  /** Files read and found cut short (a scanner pausing mid-file), by the size they had: waited for until it changes. */
  private readonly incomplete = new Map<string, number>();
  /** Folders found to match several orders (number → their ids), noted on the timelines once. */
  private readonly ambiguous = new Map<string, string>();
  private scanning = false;
  /**
   * Called as a pass is about to look at a file its directory read listed: a test's way to change the folder at
   * that very moment (a file removed between the directory read and the look at it), with no timing involved.
   */
  beforeFileCheck?: (file: string) => Promise<void>;
  /**
   * Called once a pass has read a file into the order (taken or refused), before the file is moved or the
   * timeline noted: a test's way to change the folder at that moment (the file removed during its read).
   */
  afterFileRead?: (file: string) => Promise<void>;

  constructor(
    private readonly ds: DataSource,
    private readonly images: ImageIntakeService,
    private readonly transitions: OrderTransitions,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.orders.IMAGE_WATCH_DIR) return;
    this.timer = setInterval(() => void this.scan(), SCAN_MS);
    this.timer.unref();
    log.info('watching the image drop folder');
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One pass over the drop folder (also called by tests). */
  async scan(): Promise<void> {
    const root = this.config.orders.IMAGE_WATCH_DIR;
    if (!root || this.scanning) return;
    this.scanning = true;
    try {
      await mkdir(root, { recursive: true });
      for (const dir of await readdir(root, { withFileTypes: true })) {
        if (!dir.isDirectory() || dir.name.startsWith('.')) continue;
        // One order's folder failing (removed meanwhile, unreadable) does not keep the others from being taken.
        await this.scanOrderFolder(path.join(root, dir.name), dir.name).catch((err: unknown) => {
          log.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'drop folder scan of an order folder failed',
          );
        });
      }
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'drop folder scan failed');
    } finally {
      this.scanning = false;
    }
  }

  private async scanOrderFolder(folder: string, number: string): Promise<void> {
    const entries = await readdir(folder, { withFileTypes: true });
    const files = entries.filter((e) => e.isFile() && IMAGE_FILE.test(e.name));
    const odd = entries.filter((e) => IMAGE_FILE.test(e.name) && notARegularFile(e) !== null);
    const completeMarker = entries.some((e) => e.isFile() && e.name === 'COMPLETE');
    if (files.length === 0 && odd.length === 0 && !completeMarker) return;
    const order = await this.orderFor(number);
    if (!order) return;
    // Passed over, these stayed for ever without a word: set aside at once, the timeline saying what they are.
    for (const e of odd) {
      try {
        log.warn({ orderId: order.id }, 'drop folder entry is not a regular file: set aside');
        await this.setAside(
          order.id,
          folder,
          e.name,
          `${e.name} is not a regular file (${notARegularFile(e)}): only files are read from the drop folder`,
        );
      } catch (err) {
        log.warn(
          { orderId: order.id, err: err instanceof Error ? err.message : String(err) },
          'could not set aside a drop folder entry that is not a regular file',
        );
      }
    }
    /** Files whose handling failed in this pass: a COMPLETE waits for the next pass to look at them again. */
    const troubled = new Set<string>();
    for (const f of files) {
      // One file's trouble is that file's: it vanishing under the pass (during its read, before its move), its
      // move to .rejected/ or its timeline note failing. The pass goes on with the folder's other files; before,
      // it stopped at that file, the rest of the folder waiting for a later pass.
      await this.takeFile(order, folder, f.name).catch((err: unknown) => {
        troubled.add(f.name);
        log.warn(
          { orderId: order.id, err: err instanceof Error ? err.message : String(err) },
          'drop folder file not handled: looked at again on a later scan',
        );
      });
    }
    const waiting = (f: { name: string }) =>
      troubled.has(f.name) ||
      this.sizes.has(path.join(folder, f.name)) ||
      this.incomplete.has(path.join(folder, f.name));
    if (completeMarker && !files.some(waiting)) {
      try {
        await this.images.complete(order.id, 'drop-folder', 'COMPLETE file in the drop folder');
        await this.moveTo(folder, '.done', 'COMPLETE');
      } catch (err) {
        log.warn(
          { orderId: order.id, err: err instanceof Error ? err.message : String(err) },
          'could not complete images',
        );
      }
    }
  }

  /**
   * Looks at one file of an order's folder: takes it once its size held since the last pass, or sets it aside,
   * or leaves it for a later pass (see the class). Throws when the file cannot be looked at or its outcome
   * cannot be recorded (moved, noted).
   */
  private async takeFile(order: OrderEntity, folder: string, name: string): Promise<void> {
    const full = path.join(folder, name);
    await this.beforeFileCheck?.(full);
    const size = await sizeOf(full);
    if (size === null) {
      // Gone since the directory was read (moved away, deleted, replaced): nothing to take. The pass goes on
      // with the other files; before, it stopped here, every other order's files with it.
      this.sizes.delete(full);
      this.incomplete.delete(full);
      return;
    }
    if (size === 0) {
      // Created but not yet written (scanners often do this): no image is empty, so it waits for bytes.
      this.sizes.delete(full);
      return;
    }
    if (this.incomplete.get(full) === size) return;
    if (this.sizes.get(full) !== size) {
      this.sizes.set(full, size);
      return;
    }
    this.sizes.delete(full);
    try {
      try {
        await this.images.add(order.id, name, createReadStream(full), 'watch', 'drop-folder');
      } finally {
        await this.afterFileRead?.(full);
      }
      this.incomplete.delete(full);
      await this.moveTo(folder, '.done', name);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (err instanceof ImageCutShortError) {
        // Most likely still being written: moving it away would leave the writer writing into .rejected/.
        // It stays, and is read again once its size changes; the timeline says what it waits for.
        this.incomplete.set(full, size);
        log.warn({ orderId: order.id }, 'dropped image cut short: waiting for the rest of it');
        await this.transitions.note(order.id, 'image_incomplete', 'drop-folder', {
          image: name,
          via: 'watch',
          bytes: size,
          reason: `${reason}; the file stays in the folder and is taken once whole`,
        });
      } else if (err instanceof DomainError && REFUSED.has(err.code)) {
        this.incomplete.delete(full);
        log.warn({ orderId: order.id, err: reason }, 'dropped image refused');
        await this.setAside(order.id, folder, name, reason);
      } else {
        // Still pending: tried again on the next scan, and a COMPLETE waits for it.
        this.sizes.set(full, size);
        log.warn({ orderId: order.id, err: reason }, 'dropped image not taken yet: tried again on a later scan');
      }
    }
  }

  /**
   * Moves a refused entry to `.rejected/` (under a name of its own there) and says why on the order's timeline:
   * no one gets an HTTP answer here, the timeline says what became of the file.
   */
  private async setAside(orderId: string, folder: string, name: string, why: string): Promise<void> {
    const keptAs = await this.moveTo(folder, '.rejected', name);
    await this.transitions.note(orderId, 'image_refused', 'drop-folder', {
      image: name,
      via: 'watch',
      reason: `${why}; the file was moved to .rejected/${keptAs}`,
    });
  }

  /**
   * The order a folder is for. A filler number names one order. A placer number is unique only per
   * sender: when several orders still taking images carry it, the folder is given to none (images must
   * not land on another patient's order); their timelines say so, once, and the folder waits.
   */
  private async orderFor(number: string): Promise<OrderEntity | null> {
    const matches = await this.ds.manager.find(OrderEntity, {
      where: [{ fillerOrderNumber: number }, { placerOrderNumber: number }],
      order: { createdAt: 'DESC' },
    });
    const byFiller = matches.find((o) => o.fillerOrderNumber === number);
    if (byFiller) return byFiller;
    const open = matches.filter((o) => OPEN_FOR_IMAGES.includes(o.status));
    if (open.length <= 1) {
      this.ambiguous.delete(number);
      return open[0] ?? matches[0] ?? null;
    }
    const key = open.map((o) => o.id).join(',');
    if (this.ambiguous.get(number) !== key) {
      this.ambiguous.set(number, key);
      log.warn({ orderIds: open.map((o) => o.id) }, 'drop folder matches several orders: files left in place');
      for (const o of open) {
        await this.transitions.note(o.id, 'image_folder_ambiguous', 'drop-folder', {
          orders: open.length,
          reason:
            'A drop folder named by this placer number matches several orders taking images: its files wait. ' +
            `Name the folder by the filler number (${o.fillerOrderNumber}).`,
        });
      }
    }
    return null;
  }

  /**
   * Moves a file into `<folder>/<sub>/`, under a name of its own there (`a (2).png` beside `a.png`): a file
   * of the same name set aside earlier is kept, not replaced. Returns the name it got.
   */
  private async moveTo(folder: string, sub: string, name: string): Promise<string> {
    await mkdir(path.join(folder, sub), { recursive: true });
    const ext = path.extname(name);
    const stem = name.slice(0, name.length - ext.length);
    let target = name;
    for (let n = 2; await exists(path.join(folder, sub, target)); n++) target = `${stem} (${n})${ext}`;
    await rename(path.join(folder, name), path.join(folder, sub, target));
    return target;
  }
}
