import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { OrderEventEntity } from '@hemato/persistence';
import { eventually, orderReaches, sampleOrm, type Pipeline } from '@hemato/testing';
import { listNames, startDropFolderPipeline, type DropFolderPipeline } from './support/drop-folder';

/**
 * A file set aside in `.rejected/` (or `.done/`) replaced one of the same name already there: a sender
 * dropping `a.png` again after it was refused lost the first file, the evidence of what was sent. Each
 * file now keeps its own name there (`a (2).png` beside `a.png`).
 */
describe('the drop folder and files of the same name', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;

  let d: DropFolderPipeline;

  beforeAll(async () => {
    d = await startDropFolderPipeline('imgdropnames', { IMAGE_QUIET_PERIOD_MS: '0' });
    ({ p, client, dropDir } = d);
  });

  afterAll(() => d?.close());

  it('a refused file dropped again under the same name is set aside beside the first, not over it', async () => {
    const placer = 'PL-NAMES-1';
    expect((await client.send(sampleOrm({ controlId: `C-${placer}`, placer }), `C-${placer}`)).code).toBe('AA');
    const order = await orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.AwaitingImages, 20_000);
    const folder = path.join(dropDir, placer);
    await mkdir(folder, { recursive: true });
    const refused = async (n: number) =>
      eventually(
        async () => {
          const events = await p.db.manager.find(OrderEventEntity, {
            where: { orderId: order.id, type: 'image_refused' },
          });
          return events.length >= n ? events : null;
        },
        20_000,
        `${n} refusals`,
      );

    await writeFile(path.join(folder, 'a.png'), 'first: not an image');
    await refused(1);
    await writeFile(path.join(folder, 'a.png'), 'second: not an image either');
    const events = await refused(2);

    const kept = await listNames(path.join(folder, '.rejected'));
    expect(kept).toHaveLength(2);
    const contents = await Promise.all(kept.map((f) => readFile(path.join(folder, '.rejected', f), 'utf8')));
    expect(contents.sort()).toEqual(['first: not an image', 'second: not an image either']);
    // Each refusal names where its file went.
    expect(events.map((e) => JSON.stringify(e.detail)).join('\n')).toMatch(/\.rejected\/a \(2\)\.png/);
  });
});
