import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { zipSync } from 'fflate';
import type { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEntity, OrderEventEntity } from '@hemato/persistence';
import { eventually, orderReaches, generateSmear, sampleOrm, type Pipeline } from '@hemato/testing';
import { listNames, startDropFolderPipeline, type DropFolderPipeline } from './support/drop-folder';

/**
 * A scanner that pauses mid-file for longer than two scans leaves a file whose size holds but which is
 * not whole yet. Such a file is not refused and set aside (the scanner would go on writing into
 * `.rejected/`): it stays, the timeline says it waits for the rest, and it is taken once whole.
 */
describe('the drop folder and a file still being written', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;

  let d: DropFolderPipeline;

  beforeAll(async () => {
    d = await startDropFolderPipeline('imgdroppart', { IMAGE_QUIET_PERIOD_MS: '0' });
    ({ p, client, dropDir } = d);
  });

  afterAll(() => d?.close());

  const notes = async (orderId: string, type: string) =>
    p.db.manager.find(OrderEventEntity, { where: { orderId, type }, order: { id: 'ASC' } });

  it.each([
    ['x.jpg', generateSmear({ width: 320, height: 240, format: 'jpeg', seed: 21 })],
    [
      'x.zip',
      Buffer.from(
        zipSync({
          'a.png': generateSmear({ width: 160, height: 120, format: 'png', seed: 22 }),
          'b.png': generateSmear({ width: 160, height: 120, format: 'png', seed: 23 }),
        }),
      ),
    ],
  ])(
    '%s written in two goes with a long pause is waited for, then taken whole',
    async (name, bytes) => {
      const placer = `PL-PART-${name.replace('.', '-')}`;
      expect((await client.send(sampleOrm({ controlId: `C-${placer}`, placer }), `C-${placer}`)).code).toBe('AA');
      const order = await orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.AwaitingImages, 20_000);
      const folder = path.join(dropDir, placer);
      await mkdir(folder, { recursive: true });
      const half = Math.floor(bytes.length / 2);
      await writeFile(path.join(folder, name), bytes.subarray(0, half));
      await writeFile(path.join(folder, 'COMPLETE'), '');

      // Its size held over two scans: it was read, found cut short, and left where it is.
      const [waiting] = await eventually(
        async () => {
          const found = await notes(order.id, 'image_incomplete');
          return found.length ? found : null;
        },
        20_000,
        'image_incomplete note',
      );
      expect(JSON.stringify(waiting!.detail)).toMatch(/cut short/);
      expect(await listNames(folder)).toEqual(['COMPLETE', name]);
      expect(await notes(order.id, 'image_refused')).toEqual([]);
      expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);

      // The scanner writes the rest: the file is taken whole, then COMPLETE.
      await appendFile(path.join(folder, name), bytes.subarray(half));
      await eventually(
        async () => (await p.db.manager.findOneBy(OrderEntity, { id: order.id, imagesComplete: true })) ?? null,
        30_000,
        'images complete',
      );
      const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
      expect(images.map((i) => [i.name, Number(i.sizeBytes)])).toEqual([[name, bytes.length]]);
      // The files move to .done/ after their rows are committed (a crash in between loses nothing): soon after.
      await eventually(
        async () => ((await listNames(path.join(folder, '.done'))).length === 2 ? true : null),
        10_000,
        'files moved to .done/',
      );
      expect(await listNames(path.join(folder, '.done'))).toEqual(['COMPLETE', name]);
    },
    90_000,
  );
});
