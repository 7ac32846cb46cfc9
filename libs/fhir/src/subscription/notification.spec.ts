import { FhirOperationError } from '../outcome/operation-outcome';
import { parseNotification, signBody, verifySignature } from './notification';

describe('parseNotification', () => {
  it('recognises an empty POST, a resource, and a HAPI PUT path', () => {
    expect(parseNotification(undefined)).toEqual({ shape: 'empty' });
    expect(parseNotification({})).toEqual({ shape: 'empty' });
    expect(parseNotification({ resourceType: 'ServiceRequest', id: '1' })).toMatchObject({ shape: 'resource' });
    expect(parseNotification({}, { resourceType: 'ServiceRequest', id: 'a-1' })).toEqual({
      shape: 'hapi',
      resourceType: 'ServiceRequest',
      id: 'a-1',
      resource: undefined,
    });
    expect(() => parseNotification({}, { resourceType: 'x/../y', id: '1' })).toThrow(FhirOperationError);
  });

  it('reads Backport Parameters with event numbers and focus, and Basic with extensions', () => {
    const n = parseNotification({
      resourceType: 'Bundle',
      type: 'history',
      entry: [
        {
          resource: {
            resourceType: 'Parameters',
            parameter: [
              { name: 'subscription', valueReference: { reference: 'http://ehr/Subscription/s1' } },
              { name: 'type', valueCode: 'event-notification' },
              { name: 'events-since-subscription-start', valueString: '7' },
              {
                name: 'notification-event',
                part: [
                  { name: 'event-number', valueString: '7' },
                  { name: 'focus', valueReference: { reference: 'http://ehr/ServiceRequest/9' } },
                ],
              },
            ],
          },
        },
        { fullUrl: 'http://ehr/ServiceRequest/9', resource: { resourceType: 'ServiceRequest', id: '9' } },
      ],
    });
    expect(n.shape).toBe('backport');
    if (n.shape !== 'backport') return;
    expect(n.status).toMatchObject({
      type: 'event-notification',
      subscription: 'http://ehr/Subscription/s1',
      eventsSinceStart: 7,
    });
    expect(n.status.events).toEqual([
      expect.objectContaining({
        eventNumber: 7,
        focus: 'http://ehr/ServiceRequest/9',
        resource: { resourceType: 'ServiceRequest', id: '9' },
      }),
    ]);

    const basic = parseNotification({
      resourceType: 'Bundle',
      type: 'history',
      entry: [
        {
          resource: {
            resourceType: 'Basic',
            code: { text: 'status' },
            extension: [
              {
                url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/subscription',
                valueReference: { reference: 'Subscription/2' },
              },
              { url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/type', valueCode: 'heartbeat' },
            ],
          },
        },
      ],
    });
    expect(basic).toMatchObject({
      shape: 'backport',
      status: { type: 'heartbeat', subscription: 'Subscription/2', events: [] },
    });
  });

  it('refuses a Bundle that is not a notification', () => {
    expect(() => parseNotification({ resourceType: 'Bundle', type: 'searchset', entry: [] })).toThrow(
      FhirOperationError,
    );
  });

  it('verifies X-Signature as hex HMAC-SHA256 of the body', () => {
    const body = JSON.stringify({ resourceType: 'ServiceRequest', id: '1' });
    expect(verifySignature('s3cret', body, signBody('s3cret', body))).toBe(true);
    expect(verifySignature('s3cret', body + ' ', signBody('s3cret', body))).toBe(false);
    expect(verifySignature('s3cret', body, 'zz')).toBe(false);
    expect(verifySignature('s3cret', body, undefined)).toBe(false);
  });
});
