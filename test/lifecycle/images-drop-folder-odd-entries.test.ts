import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MllpClient } from '@hemato/hl7';
import { ImageFileEntity, OrderEventEntity } from '@hemato/persistence';
import { eventually, generateSmear, type Pipeline } from '@hemato/testing';
import { listNames, startDropFolderPipeline, type DropFolderPipeline } from './support/drop-folder';
import { sendOrderAwaitingImages } from './support/hl7-order';

/**
 * Entries of the drop folder with an image's name that are no regular file: a named pipe (FIFO), a symbolic
 * link (dangling, or to an image elsewhere on the machine). They were passed over without a word, on every
 * scan, for ever: the folder never emptied and nobody learned why that image never reached the order. A
 * FIFO is never opened (the read would wait for a writer, and the scan with it), nor is a link followed
 * (it may lead anywhere the worker can read): each is moved to `.rejected/` at once, with an
 * `image_refused` line saying what it is, and the order's other images go on.
 */
describe('drop folder entries that are not regular files', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;
  let elsewhere: string;

  let d: DropFolderPipeline;

  beforeAll(async () => {
    elsewhere = await mkdtemp(path.join(os.tmpdir(), 'hb-drop-elsewhere-'));
    d = await startDropFolderPipeline('imgdropodd');
    ({ p, client, dropDir } = d);
  });

  afterAll(async () => {
    await d?.close();
    await rm(elsewhere, { recursive: true, force: true });
  });

  it('a FIFO and symbolic links are moved to .rejected/ with the reason; the regular image and COMPLETE go on', async () => {
    const order = await sendOrderAwaitingImages(p, client, 'PL-DROP-ODD');
    const folder = path.join(dropDir, 'PL-DROP-ODD');
    await mkdir(folder, { recursive: true });
    const outside = path.join(elsewhere, 'other.png');
    await writeFile(outside, generateSmear({ width: 64, height: 48, format: 'png', seed: 71 }));
    execFileSync('mkfifo', [path.join(folder, 'pipe.png')]);
    await symlink(path.join(elsewhere, 'missing.png'), path.join(folder, 'dangling.png'));
    await symlink(outside, path.join(folder, 'linked.png'));
    await writeFile(path.join(folder, 'good.png'), generateSmear({ width: 64, height: 48, format: 'png', seed: 72 }));
    // A dangling link set aside earlier under the same name is kept: the new one gets a name of its own.
    await mkdir(path.join(folder, '.rejected'));
    await symlink(path.join(elsewhere, 'earlier.png'), path.join(folder, '.rejected', 'dangling.png'));
    await writeFile(path.join(folder, 'COMPLETE'), '');

    await eventually(
      async () => ((await listNames(path.join(folder, '.done'))).includes('COMPLETE') ? true : null),
      30_000,
      'COMPLETE taken',
    );
    expect(await listNames(path.join(folder, '.done'))).toEqual(['COMPLETE', 'good.png']);
    expect(await listNames(path.join(folder, '.rejected'))).toEqual([
      'dangling (2).png',
      'dangling.png',
      'linked.png',
      'pipe.png',
    ]);
    expect(await listNames(folder)).toEqual(['.done', '.rejected']);

    const refused = await p.db.manager.find(OrderEventEntity, {
      where: { orderId: order.id, type: 'image_refused' },
      order: { id: 'ASC' },
    });
    const reasons = Object.fromEntries(
      refused.map((e) => [(e.detail as { image: string }).image, (e.detail as { reason: string }).reason]),
    );
    expect(Object.keys(reasons).sort()).toEqual(['dangling.png', 'linked.png', 'pipe.png']);
    expect(reasons['pipe.png']).toMatch(/not a regular file \(a named pipe\).*moved to \.rejected\/pipe\.png/);
    expect(reasons['linked.png']).toMatch(/not a regular file \(a symbolic link\).*moved to \.rejected\/linked\.png/);
    expect(reasons['dangling.png']).toMatch(
      /not a regular file \(a symbolic link\).*moved to \.rejected\/dangling \(2\)\.png/,
    );
    // The reason names the file, never where a link led.
    expect(JSON.stringify(refused)).not.toContain(elsewhere);

    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(images.map((i) => i.name)).toEqual(['good.png']);
  });
});
