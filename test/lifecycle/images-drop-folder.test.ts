import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEntity, OrderEventEntity } from '@hemato/persistence';
import { eventually, orderReaches, generateSmear, sampleOrm, type Pipeline } from '@hemato/testing';
import { sendOrderAwaitingImages } from './support/hl7-order';
import { listNames, startDropFolderPipeline, type DropFolderPipeline } from './support/drop-folder';

describe('images dropped in the watched folder, and the quiet period', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;

  let d: DropFolderPipeline;

  beforeAll(async () => {
    d = await startDropFolderPipeline('imgdrop', { IMAGE_QUIET_PERIOD_MS: '3000' });
    ({ p, client, dropDir } = d);
  });

  afterAll(() => d?.close());

  const waitingOrder = (placer: string) => sendOrderAwaitingImages(p, client, placer);

  async function completed(id: string): Promise<OrderEntity> {
    return orderReaches(p.db, { id }, OrderStatus.Completed);
  }

  async function readyReason(id: string): Promise<string> {
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: id }, order: { id: 'ASC' } });
    const path = events.filter((e) => e.type === 'status_changed').map((e) => e.toStatus);
    expect(path.slice(0, 3)).toEqual(['received', 'awaiting_images', 'ready']);
    return JSON.stringify(events.find((e) => e.toStatus === 'ready')?.detail);
  }

  it('an image in <dir>/<placer number>/ and a COMPLETE file take a waiting order to an ORU', async () => {
    const order = await waitingOrder('PL-DROP-1');
    const folder = path.join(dropDir, 'PL-DROP-1');
    await mkdir(folder, { recursive: true });
    await writeFile(
      path.join(folder, 'x.png'),
      generateSmear({ width: 400, height: 300, format: 'png', seed: 7, parasites: true }),
    );
    await writeFile(path.join(folder, 'COMPLETE'), '');

    const oru = await p.receiver.waitFor((m) => m.includes('PL-DROP-1'), 90_000);
    expect(oru).toMatch(/\|ORU\^R01/);
    await completed(order.id);
    expect(await readyReason(order.id)).toMatch(/COMPLETE file in the drop folder/);
    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(images.map((i) => [i.name, i.source, i.mediaType])).toEqual([['x.png', 'watch', 'image/png']]);
    // Taken files leave the folder for .done/.
    expect(await listNames(folder)).toEqual(['.done']);
    expect(await listNames(path.join(folder, '.done'))).toEqual(['COMPLETE', 'x.png']);
  });

  it('without COMPLETE, images are complete after IMAGE_QUIET_PERIOD_MS; a non-image is set aside', async () => {
    const order = await waitingOrder('PL-DROP-2');
    const folder = path.join(dropDir, 'PL-DROP-2');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'y.png'), generateSmear({ width: 400, height: 300, format: 'png', seed: 8 }));
    await writeFile(path.join(folder, 'z.png'), 'not an image at all, only text');

    await p.receiver.waitFor((m) => m.includes('PL-DROP-2'), 90_000);
    await completed(order.id);
    expect(await readyReason(order.id)).toMatch(/no new image for 3 s/);
    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(images.map((i) => i.name)).toEqual(['y.png']);
    expect(await listNames(path.join(folder, '.done'))).toEqual(['y.png']);
    expect(await listNames(path.join(folder, '.rejected'))).toEqual(['z.png']);
  });

  it('files for a number no order carries stay where they are', async () => {
    const folder = path.join(dropDir, 'PL-NOBODY');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'w.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 3 }));
    // Another order's image being taken shows that scans ran meanwhile.
    const order = await waitingOrder('PL-DROP-3');
    await mkdir(path.join(dropDir, 'PL-DROP-3'), { recursive: true });
    await writeFile(
      path.join(dropDir, 'PL-DROP-3', 'v.png'),
      generateSmear({ width: 64, height: 64, format: 'png', seed: 4 }),
    );
    await eventually(
      () => p.db.manager.findOne(ImageFileEntity, { where: { orderId: order.id, name: 'v.png' } }),
      20_000,
      'v.png taken',
    );
    expect(await listNames(folder)).toEqual(['w.png']);
  });

  it("a dropped file refused (not an image; after the order's images were complete) is on the order's timeline", async () => {
    const order = await waitingOrder('PL-DROP-5');
    const folder = path.join(dropDir, 'PL-DROP-5');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'note.png'), 'a lab note, not an image');
    const refused = await eventually(
      () => p.db.manager.findOne(OrderEventEntity, { where: { orderId: order.id, type: 'image_refused' } }),
      20_000,
      'refusal on the timeline',
    );
    expect(refused.detail).toMatchObject({ image: 'note.png', via: 'watch' });
    expect(JSON.stringify(refused.detail)).toMatch(/JPEG, PNG/);
    expect(await listNames(path.join(folder, '.rejected'))).toEqual(['note.png']);

    // PL-DROP-1 completed in the first test: a file for it now comes too late.
    const done = await p.db.manager.findOneByOrFail(OrderEntity, { placerOrderNumber: 'PL-DROP-1' });
    await writeFile(
      path.join(dropDir, 'PL-DROP-1', 'late.png'),
      generateSmear({ width: 64, height: 64, format: 'png', seed: 17 }),
    );
    const late = await eventually(
      () => p.db.manager.findOne(OrderEventEntity, { where: { orderId: done.id, type: 'image_refused' } }),
      20_000,
      'late refusal on the timeline',
    );
    expect(JSON.stringify(late.detail)).toMatch(/late.png.*takes no more images|takes no more images.*late.png/);
    expect(await listNames(path.join(dropDir, 'PL-DROP-1', '.rejected'))).toEqual(['late.png']);
  });

  it('a file still empty (created by the scanner, not yet written) waits until it has bytes', async () => {
    const order = await waitingOrder('PL-DROP-6');
    const folder = path.join(dropDir, 'PL-DROP-6');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'e.png'), '');
    // Several scans see it empty.
    await new Promise((r) => setTimeout(r, 6000));
    expect(await listNames(folder)).toEqual(['e.png']);
    const bytes = generateSmear({ width: 64, height: 64, format: 'png', seed: 19 });
    await writeFile(path.join(folder, 'e.png'), bytes);
    const image = await eventually(
      () => p.db.manager.findOne(ImageFileEntity, { where: { orderId: order.id, name: 'e.png' } }),
      20_000,
      'e.png taken',
    );
    expect(Number(image.sizeBytes)).toBe(bytes.length);
  });

  it('a folder whose number two waiting orders carry (two senders, one placer number) is given to neither', async () => {
    const first = await waitingOrder('PL-TWIN');
    // The same placer number from another sender is another order.
    const msg = sampleOrm({ controlId: 'C-PL-TWIN-2', placer: 'PL-TWIN' }).replace('|LIS|GENHOSP|', '|LIS2|OTHERHOSP|');
    expect((await client.send(msg, 'C-PL-TWIN-2')).code).toBe('AA');
    const second = await eventually(async () => {
      const orders = await p.db.manager.find(OrderEntity, { where: { placerOrderNumber: 'PL-TWIN' } });
      return orders.find((o) => o.id !== first.id && o.status === OrderStatus.AwaitingImages);
    }, 20_000);

    const folder = path.join(dropDir, 'PL-TWIN');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 't.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 6 }));
    // Both orders' timelines say why the file waits.
    for (const o of [first, second]) {
      const note = await eventually(
        () => p.db.manager.findOne(OrderEventEntity, { where: { orderId: o.id, type: 'image_folder_ambiguous' } }),
        20_000,
        'ambiguity on the timeline',
      );
      expect(JSON.stringify(note.detail)).toMatch(/filler number/);
    }
    expect(await listNames(folder)).toEqual(['t.png']);
    expect(await p.db.manager.count(ImageFileEntity, { where: [{ orderId: first.id }, { orderId: second.id }] })).toBe(
      0,
    );

    // The filler number names one order: a folder under it is taken.
    const byFiller = path.join(dropDir, second.fillerOrderNumber);
    await mkdir(byFiller, { recursive: true });
    await writeFile(path.join(byFiller, 't.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 6 }));
    await eventually(
      () => p.db.manager.findOne(ImageFileEntity, { where: { orderId: second.id, name: 't.png' } }),
      20_000,
      't.png taken for the second order',
    );
  });
});

describe('drop folder while the image store fails (no quiet period)', () => {
  let p: Pipeline;
  let client: MllpClient;
  let dropDir: string;

  let d: DropFolderPipeline;

  beforeAll(async () => {
    d = await startDropFolderPipeline('imgdropfail', { IMAGE_QUIET_PERIOD_MS: '0' });
    ({ p, client, dropDir } = d);
  });

  afterAll(() => d?.close());

  it('a file the store cannot take right now stays, holds back COMPLETE, and is taken once the store works', async () => {
    const placer = 'PL-DROP-4';
    expect((await client.send(sampleOrm({ controlId: `C-${placer}`, placer }), `C-${placer}`)).code).toBe('AA');
    const order = await orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.AwaitingImages, 20_000);
    const folder = path.join(dropDir, placer);
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 's.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 15 }));
    await eventually(
      () => p.db.manager.findOne(ImageFileEntity, { where: { orderId: order.id, name: 's.png' } }),
      20_000,
      's.png taken',
    );

    // The store cannot spool anything: its tmp folder is a file (as on a full or failing disk).
    const spool = path.join(p.config.orders.IMAGE_DIR!, 'tmp');
    await rm(spool, { recursive: true, force: true });
    await writeFile(spool, 'in the way');
    try {
      await writeFile(path.join(folder, 'u.png'), generateSmear({ width: 64, height: 64, format: 'png', seed: 5 }));
      // Long enough for the file to be seen, found stable and tried (scans every 2 s).
      await new Promise((r) => setTimeout(r, 7000));
      expect(await listNames(folder)).toEqual(['.done', 'u.png']);
      // The scanner closes the set: not while one of its files waits.
      await writeFile(path.join(folder, 'COMPLETE'), '');
      await new Promise((r) => setTimeout(r, 5000));
      expect((await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id })).status).toBe(
        OrderStatus.AwaitingImages,
      );
    } finally {
      await rm(spool, { force: true });
    }
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 90_000);
    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(images.map((i) => [i.name, !!i.hematoFileId]).sort()).toEqual([
      ['s.png', true],
      ['u.png', true],
    ]);
    expect(await listNames(folder)).toEqual(['.done']);
    expect(await listNames(path.join(folder, '.done'))).toEqual(['COMPLETE', 's.png', 'u.png']);
  });
});
