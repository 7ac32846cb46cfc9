import type { Bundle, Resource } from '@medplum/fhirtypes';

/** Finds the resource a reference points at: in the request Bundle, contained, or on the EHR. */
export interface ResourceResolver {
  /** The resource, or undefined when it cannot be found. Network errors propagate. */
  resolve(reference: string, from?: Resource): Promise<Resource | undefined>;
}

/** Resolves references inside one Bundle (by fullUrl or `Type/id`) and contained resources. */
export class BundleResolver implements ResourceResolver {
  private readonly byKey = new Map<string, Resource>();

  constructor(
    bundle: Bundle | undefined,
    private readonly fallback?: ResourceResolver,
  ) {
    for (const entry of bundle?.entry ?? []) {
      const r = entry.resource;
      if (!r) continue;
      if (entry.fullUrl) this.byKey.set(entry.fullUrl, r);
      if (r.id) this.byKey.set(`${r.resourceType}/${r.id}`, r);
      if (entry.fullUrl && r.id) {
        // An absolute fullUrl like https://ehr/fhir/Patient/1 is also reachable as Patient/1.
        const m = /([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})$/.exec(entry.fullUrl);
        if (m) this.byKey.set(m[1]!, r);
      }
    }
  }

  /** Every resource of a type in the Bundle. */
  ofType<T extends Resource>(type: T['resourceType']): T[] {
    return [...new Set(this.byKey.values())].filter((r): r is T => r.resourceType === type);
  }

  async resolve(reference: string, from?: Resource): Promise<Resource | undefined> {
    if (reference.startsWith('#') && from && 'contained' in from) {
      const contained = (from as { contained?: Resource[] }).contained ?? [];
      return contained.find((c) => c.id === reference.slice(1));
    }
    const hit = this.byKey.get(reference) ?? this.byKey.get(reference.replace(/\/_history\/.*$/, ''));
    if (hit) return hit;
    return this.fallback?.resolve(reference, from);
  }
}
