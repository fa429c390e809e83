// The client's side of FCGI_GET_VALUES (spec 4.1): the query record, the answer decoded, and the
// query awaiting it.

import { decodeParams, encodeParams } from './params.js';
import { NULL_REQUEST_ID, RecordType } from './protocol.js';
import { encodeRecord } from './records.js';

/** A GET_VALUES query sent and not answered yet. */
export interface PendingValues {
  resolve: (values: Map<string, string>) => void;
  reject: (error: Error) => void;
}

/** The GET_VALUES record asking for `names` (each with an empty value, as the spec says). */
export function encodeValuesQuery(names: readonly string[]): Buffer {
  const query = encodeParams(names.map((name) => [name, ''] as const));
  return encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, query);
}

/** A GET_VALUES_RESULT record's content as names and values. */
export function decodeValues(content: Buffer): Map<string, string> {
  const values = new Map<string, string>();
  for (const [name, value] of decodeParams(content)) values.set(name, value.toString('latin1'));
  return values;
}
