import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';

/**
 * Resolves a name to its addresses, as `dns.lookup` does with `all: true` (the fetcher's default). A test
 * may pass another resolver, since no name but `localhost` resolves to a loopback address on every machine.
 */
export type AddressResolver = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export const systemResolver: AddressResolver = (hostname, options, callback) => dnsLookup(hostname, options, callback);

/** The kinds of address an image URL's host name may not lead to. */
export type RefusedAddressKind =
  'loopback' | 'link-local' | 'cloud metadata' | 'unspecified' | 'multicast' | 'broadcast';

/** The 8 16-bit words of an IPv6 address (an embedded IPv4 tail and a `%zone` allowed), or null. */
function ipv6Words(ip: string): number[] | null {
  let s = ip.toLowerCase().replace(/%.*$/, '');
  const v4Tail = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4Tail) {
    const [a, b, c, d] = v4Tail.slice(2).map(Number) as [number, number, number, number];
    s = `${v4Tail[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return null;
  const words = [...head, ...Array<string>(fill).fill('0'), ...tail].map((h) =>
    /^[0-9a-f]{1,4}$/.test(h) ? parseInt(h, 16) : NaN,
  );
  return words.length === 8 && words.every((w) => !Number.isNaN(w)) ? words : null;
}

/**
 * Cloud services that answer an instance, outside 169.254/16: Alibaba Cloud's metadata service (in carrier-grade
 * NAT space, 100.64/10, which otherwise holds sites' servers too) and Azure's wire server (168.63.129.16: its
 * platform agent, DNS and health probes, which hands out the instance's own configuration and certificates).
 */
const CLOUD_METADATA_V4 = new Set(['100.100.100.200', '168.63.129.16']);

function ipv4Kind([a, b, c, d]: number[]): RefusedAddressKind | undefined {
  if (CLOUD_METADATA_V4.has(`${a}.${b}.${c}.${d}`)) return 'cloud metadata';
  if (a === 127) return 'loopback';
  // 0.0.0.0/8, "this network": Linux connects 0.0.0.0 to the machine itself.
  if (a === 0) return 'unspecified';
  if (a === 169 && b === 254) return c === 169 && d === 254 ? 'cloud metadata' : 'link-local';
  if (a! >= 224 && a! <= 239) return 'multicast';
  if (a === 255 && b === 255 && c === 255 && d === 255) return 'broadcast';
  return undefined;
}

/**
 * What kind of address `ip` is, when it is one an image fetched by host name may not come from: the machine
 * itself (loopback, unspecified), its link (link-local, where cloud metadata services answer: 169.254.169.254,
 * fd00:ec2::254; and the cloud services outside it: 100.100.100.200, 168.63.129.16) or a multicast group; also as
 * an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) or through NAT64 (`64:ff9b::127.0.0.1`). Private
 * networks (10/8, 172.16/12, 192.168/16, fc00::/7), where hospital image servers sit, are not refused.
 */
export function refusedAddressKind(ip: string): RefusedAddressKind | undefined {
  const family = isIP(ip.replace(/%.*$/, ''));
  if (family === 4) return ipv4Kind(ip.split('.').map(Number));
  if (family !== 6) return undefined;
  const w = ipv6Words(ip);
  if (!w) return undefined;
  const zeroUpTo = (n: number) => w.slice(0, n).every((x) => x === 0);
  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && w[7] === 1) return 'loopback';
  const embeddedV4 = () => ipv4Kind([w[6]! >> 8, w[6]! & 0xff, w[7]! >> 8, w[7]! & 0xff]);
  // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d): judged as the IPv4 address.
  if (zeroUpTo(5) && (w[5] === 0xffff || w[5] === 0)) return embeddedV4();
  // NAT64's well-known prefix (64:ff9b::a.b.c.d, RFC 6052): on an IPv6-only network a DNS64 resolver answers
  // this for an IPv4-only name, and the NAT64 gateway connects to a.b.c.d: judged as that IPv4 address.
  if (w[0] === 0x64 && w[1] === 0xff9b && w.slice(2, 6).every((x) => x === 0)) return embeddedV4();
  if ((w[0]! & 0xffc0) === 0xfe80) return 'link-local';
  if ((w[0]! & 0xff00) === 0xff00) return 'multicast';
  // AWS's IPv6 instance metadata service: inside fc00::/7, which is otherwise a private network.
  if (w.join(':') === [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254].join(':')) return 'cloud metadata';
  return undefined;
}

/** Marks a connection refused by {@link guardedLookup}; the fetcher turns it into its reason. */
export const ADDRESS_REFUSED = 'HB_IMAGE_ADDRESS_REFUSED';

export class AddressRefusedError extends Error {
  readonly code = ADDRESS_REFUSED;
  constructor(
    readonly host: string,
    readonly kind: RefusedAddressKind,
    readonly address: string,
  ) {
    super(`Image host ${host} resolves to a ${kind} address (${address}), which is not fetched from by name`);
  }
}

/** `localhost` (with or without its final dot): an operator who allow-lists that name means the machine itself. */
const isLocalhostName = (hostname: string) => /^localhost\.?$/i.test(hostname);

/**
 * A `lookup` for `net.connect`/`tls.connect` that resolves with `resolve` and hands on only the addresses an
 * image may come from: the socket connects to an address checked here, never to one of a second resolution
 * (a name re-pointed between a check and the connection, DNS rebinding, gets nowhere). When none is left, the
 * connection fails with an {@link AddressRefusedError} naming the host and the kind of address. An IP literal in
 * the URL never comes here (it is connected to as written, allowed only if IMAGE_URL_ALLOWED_HOSTS names it).
 */
export function guardedLookup(resolve: AddressResolver) {
  return (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const allowed = isLocalhostName(hostname)
        ? addresses
        : addresses.filter((a) => refusedAddressKind(a.address) === undefined);
      if (allowed.length === 0) {
        const first = addresses[0];
        if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
        return callback(new AddressRefusedError(hostname, refusedAddressKind(first.address)!, first.address), '');
      }
      if (options.all) return callback(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}
