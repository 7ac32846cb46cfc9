import { criteriaParams, ourServiceRequestCriteria } from './subscription-resource';

describe('ourServiceRequestCriteria', () => {
  it('asks for active ServiceRequests with one of our order codes, in FHIR code systems', () => {
    expect(
      ourServiceRequestCriteria(undefined, [
        { system: 'LN', code: '34994-4' },
        { system: 'SCT', code: '104130000' },
        { system: 'L', code: 'PBS,1|X' },
      ]),
    ).toBe(
      'ServiceRequest?status=active,on-hold,revoked,entered-in-error&code=http://loinc.org|34994-4,http://snomed.info/sct|104130000,PBS\\,1\\|X',
    );
  });

  it('takes FHIR_SUBSCRIPTION_CRITERIA as given, and reads a search into parameters (repeats as a list)', () => {
    expect(ourServiceRequestCriteria('ServiceRequest?performer=Organization/lab', [{ system: 'LN', code: '1' }])).toBe(
      'ServiceRequest?performer=Organization/lab',
    );
    expect(
      criteriaParams('ServiceRequest?status=active&code=http://loinc.org|1,http://loinc.org|2&_tag=a&_tag=b'),
    ).toEqual({
      status: 'active',
      code: 'http://loinc.org|1,http://loinc.org|2',
      _tag: ['a', 'b'],
    });
  });
});
