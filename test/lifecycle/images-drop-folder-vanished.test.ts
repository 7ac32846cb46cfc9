import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { ImageIntakeService, OrderTransitions } from '@hemato/orders';
import { ImageFileEntity } from '@hemato/persistence';
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
 */
describe('the drop folder and a file that vanishes during a pass', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;
  let watcher: ImageWatcher;

  beforeAll(async () => {
    dropDir = await mkdtemp(path.join(os.tmpdir(), 'hb-drop-vanish-'));
    // The pipeline's own worker watches no folder: this test's watcher runs its passes one at a time, when told.
    p = await startPipeline('imgdropvanish', { IMAGE_QUIET_PERIOD_MS: '0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
    const w = p.worker!;
    watcher = new ImageWatcher(w.get(DataSource), w.get(ImageIntakeService), w.get(OrderTransitions), {
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
});
