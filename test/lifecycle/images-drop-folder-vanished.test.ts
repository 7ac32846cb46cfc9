import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { ImageIntakeService, OrderTransitions } from '@hemato/orders';
import { ImageFileEntity, OrderEventEntity } from '@hemato/persistence';
import { generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { DataSource } from 'typeorm';
import { ImageWatcher } from '../../apps/worker/src/images/image-watcher';

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/**
 * A file may leave the drop folder between the pass's directory read and its look at the file (someone tidying
 * the folder, a scanner replacing a file). That one file is passed over; the pass goes on with the others, in
 * its folder and in the other orders' folders. The pass used to stop there, every order's files with it.
 * So with a file whose outcome cannot be recorded (gone once read, so it cannot be set aside; its timeline note
 * failing): the pass used to stop at it, the rest of its folder waiting for a later pass.
 */
describe('the drop folder and a file that vanishes during a pass', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;
  let watcher: ImageWatcher;
  let noteFailingWatcher: ImageWatcher;
  let failNotes = false;

  beforeAll(async () => {
    dropDir = await mkdtemp(path.join(os.tmpdir(), 'hb-drop-vanish-'));
    // The pipeline's own worker watches no folder: this test's watcher runs its passes one at a time, when told.
    p = await startPipeline('imgdropvanish', { IMAGE_QUIET_PERIOD_MS: '0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
    const w = p.worker!;
    watcher = new ImageWatcher(w.get(DataSource), w.get(ImageIntakeService), w.get(OrderTransitions), {
      orders: { ...p.config.orders, IMAGE_WATCH_DIR: dropDir },
    });
    // The same, but its timeline notes fail while `failNotes` says so (the database refusing that one write).
    const transitions = w.get(OrderTransitions);
    const failing = Object.create(transitions) as OrderTransitions;
    failing.note = async (...args: Parameters<OrderTransitions['note']>) => {
      if (failNotes) throw new Error('the note could not be written');
      return transitions.note(...args);
    };
    noteFailingWatcher = new ImageWatcher(w.get(DataSource), w.get(ImageIntakeService), failing, {
      orders: { ...p.config.orders, IMAGE_WATCH_DIR: dropDir },
    });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await rm(dropDir, { recursive: true, force: true });
  });

  const awaitingImages = async (placer: string) => {
    expect((await client.send(sampleOrm({ controlId: `C-${placer}`, placer }), `C-${placer}`)).code).toBe('AA');
    return orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.AwaitingImages, 20_000);
  };

  it('passes over that file and takes the others, in its folder and in the other folders', async () => {
    const a = await awaitingImages('PL-VANISH-A');
    const b = await awaitingImages('PL-VANISH-B');
    const folderA = path.join(dropDir, 'PL-VANISH-A');
    const folderB = path.join(dropDir, 'PL-VANISH-B');
    await mkdir(folderA);
    await mkdir(folderB);
    const png = (seed: number) => generateSmear({ width: 64, height: 64, format: 'png', seed });
    await writeFile(path.join(folderA, 'one.png'), png(1));
    await writeFile(path.join(folderA, 'two.png'), png(2));
    await writeFile(path.join(folderB, 'three.png'), png(3));

    // In each pass, the first file of folder A looked at leaves just before it is looked at, and is back after.
    const vanished: string[] = [];
    let passes = 0;
    watcher.beforeFileCheck = async (file) => {
      if (path.dirname(file) !== folderA || vanished.length > passes) return;
      vanished.push(path.basename(file));
      await rm(file);
    };
    for (; passes < 2; passes++) {
      await watcher.scan();
      // The file comes back (a scanner writing it again): only the one pass missed it.
      const gone = vanished[passes];
      if (gone) await writeFile(path.join(folderA, gone), png(gone === 'one.png' ? 1 : 2));
    }
    watcher.beforeFileCheck = undefined;

    // A file is taken once its size held between two passes: the two passes took every file they looked at.
    expect(vanished).toHaveLength(2);
    expect(vanished[1]).toBe(vanished[0]);
    const kept = vanished[0] === 'one.png' ? 'two.png' : 'one.png';
    expect(await list(path.join(folderA, '.done'))).toEqual([kept]);
    expect(await list(path.join(folderB, '.done'))).toEqual(['three.png']);
    const names = async (orderId: string) =>
      (await p.db.manager.find(ImageFileEntity, { where: { orderId } })).map((i) => i.name).sort();
    expect(await names(a.id)).toEqual([kept]);
    expect(await names(b.id)).toEqual(['three.png']);

    // The file that vanished is taken once it stays: two passes more.
    await watcher.scan();
    await watcher.scan();
    expect(await names(a.id)).toEqual(['one.png', 'two.png']);
  });

  it("takes the other orders' files when one order's folder fails during a pass", async () => {
    const c = await awaitingImages('PL-VANISH-C');
    const d = await awaitingImages('PL-VANISH-D');
    for (const [placer, seed] of [
      ['PL-VANISH-C', 4],
      ['PL-VANISH-D', 5],
    ] as const) {
      await mkdir(path.join(dropDir, placer));
      await writeFile(
        path.join(dropDir, placer, 'slide.png'),
        generateSmear({ width: 64, height: 64, format: 'png', seed }),
      );
    }
    // The first folder looked at becomes a file under the pass (removed, and a file written in its place):
    // looking at its image fails, and not because the image is missing.
    let broken: string | null = null;
    watcher.beforeFileCheck = async (file) => {
      if (broken) return;
      broken = path.dirname(file);
      await rm(broken, { recursive: true });
      await writeFile(broken, 'not a folder');
    };
    await watcher.scan();
    await watcher.scan();
    watcher.beforeFileCheck = undefined;
    expect(broken).not.toBeNull();
    const other = path.basename(broken!) === 'PL-VANISH-C' ? d : c;
    const stored = await p.db.manager.find(ImageFileEntity, { where: { orderId: other.id } });
    expect(stored.map((i) => i.name)).toEqual(['slide.png']);
  });

  const refusedNotes = async (orderId: string) =>
    (await p.db.manager.find(OrderEventEntity, { where: { orderId, type: 'image_refused' } })).map(
      (e) => (e.detail as { image: string }).image,
    );

  it('passes over a refused file that vanished while it was read, and goes on with its folder', async () => {
    const e = await awaitingImages('PL-VANISH-E');
    const folder = path.join(dropDir, 'PL-VANISH-E');
    await mkdir(folder);
    // Two files that are not images (refused, set aside in .rejected/) and one image.
    await writeFile(path.join(folder, 'bad-1.png'), 'not an image, one');
    await writeFile(path.join(folder, 'bad-2.png'), 'not an image, two');
    await writeFile(path.join(folder, 'good.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 6 }));

    // The first refused file read in a pass leaves once it has been read: it cannot be moved to .rejected/.
    let vanished: string | null = null;
    watcher.afterFileRead = async (file) => {
      if (vanished || path.dirname(file) !== folder || !path.basename(file).startsWith('bad-')) return;
      vanished = path.basename(file);
      await rm(file);
    };
    // A file is taken once its size held between two passes: the second pass reads all three.
    await watcher.scan();
    await watcher.scan();
    watcher.afterFileRead = undefined;

    expect(vanished).not.toBeNull();
    const other = vanished === 'bad-1.png' ? 'bad-2.png' : 'bad-1.png';
    // The other refused file was set aside, and the timeline says so; the image was taken.
    expect(await list(path.join(folder, '.rejected'))).toEqual([other]);
    expect(await refusedNotes(e.id)).toEqual([other]);
    expect(await list(path.join(folder, '.done'))).toEqual(['good.png']);
    const stored = await p.db.manager.find(ImageFileEntity, { where: { orderId: e.id } });
    expect(stored.map((i) => i.name)).toEqual(['good.png']);
    expect(await list(folder)).toEqual(['.done', '.rejected']);
  });

  it("goes on with a folder's files when a refused file's timeline note fails", async () => {
    const f = await awaitingImages('PL-VANISH-F');
    const folder = path.join(dropDir, 'PL-VANISH-F');
    await mkdir(folder);
    await writeFile(path.join(folder, 'bad-1.png'), 'not an image, one');
    await writeFile(path.join(folder, 'bad-2.png'), 'not an image, two');
    await writeFile(path.join(folder, 'good.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 7 }));

    await noteFailingWatcher.scan();
    // The second pass reads the files: the note of the first refused file read fails (the database refusing it).
    let refusedSeen = 0;
    noteFailingWatcher.afterFileRead = async (file) => {
      if (path.dirname(file) === folder && path.basename(file).startsWith('bad-')) failNotes = ++refusedSeen === 1;
    };
    try {
      await noteFailingWatcher.scan();
    } finally {
      noteFailingWatcher.afterFileRead = undefined;
      failNotes = false;
    }

    expect(refusedSeen).toBe(2);
    // Both refused files were set aside; the one whose note failed has none, the other has its note.
    expect(await list(path.join(folder, '.rejected'))).toEqual(['bad-1.png', 'bad-2.png']);
    expect(await refusedNotes(f.id)).toHaveLength(1);
    expect(await list(path.join(folder, '.done'))).toEqual(['good.png']);
    const stored = await p.db.manager.find(ImageFileEntity, { where: { orderId: f.id } });
    expect(stored.map((i) => i.name)).toEqual(['good.png']);
  });
});
