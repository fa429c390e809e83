// FastCGI 1.0 protocol constants and plain data types (FastCGI Specification, Open Market, 1996).

/** Spec 8: FCGI_VERSION_1. Every record header carries it. */
export const FCGI_VERSION = 1;
/** Spec 3.3: the fixed record header length. */
export const HEADER_BYTES = 8;
/** contentLength is a 16-bit field, so one record carries at most 65535 bytes of content. */
export const MAX_CONTENT_BYTES = 65535;
/** paddingLength is an 8-bit field. */
export const MAX_PADDING_BYTES = 255;
/** Spec 3.3: management records carry requestId 0 (FCGI_NULL_REQUEST_ID). */
export const NULL_REQUEST_ID = 0;
/** Request ids are 16-bit. */
export const MAX_REQUEST_ID = 65535;

/** Spec 8: record types. */
export const RecordType = {
  BeginRequest: 1,
  AbortRequest: 2,
  EndRequest: 3,
  Params: 4,
  Stdin: 5,
  Stdout: 6,
  Stderr: 7,
  Data: 8,
  GetValues: 9,
  GetValuesResult: 10,
  UnknownType: 11,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** Spec 8: FCGI_MAXTYPE; types above it are unknown to this implementation. */
export const MAX_KNOWN_TYPE = RecordType.UnknownType;

const TYPE_NAMES: Record<number, string> = {
  1: 'BEGIN_REQUEST',
  2: 'ABORT_REQUEST',
  3: 'END_REQUEST',
  4: 'PARAMS',
  5: 'STDIN',
  6: 'STDOUT',
  7: 'STDERR',
  8: 'DATA',
  9: 'GET_VALUES',
  10: 'GET_VALUES_RESULT',
  11: 'UNKNOWN_TYPE',
};

/** A record type's spec name ("STDOUT"), or "type N" for one this implementation does not know. */
export function recordTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `type ${type}`;
}

/** Spec 5.1: roles in FCGI_BeginRequestBody. */
export const Role = {
  Responder: 1,
  Authorizer: 2,
  Filter: 3,
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Spec 5.1: flags in FCGI_BeginRequestBody; FCGI_KEEP_CONN is the only one defined. */
export const FLAG_KEEP_CONN = 1;

/** Spec 5.5: protocolStatus values in FCGI_EndRequestBody. */
export const ProtocolStatus = {
  RequestComplete: 0,
  CantMpxConn: 1,
  Overloaded: 2,
  UnknownRole: 3,
} as const;
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

const PROTOCOL_STATUS_NAMES: Record<number, string> = {
  0: 'FCGI_REQUEST_COMPLETE',
  1: 'FCGI_CANT_MPX_CONN',
  2: 'FCGI_OVERLOADED',
  3: 'FCGI_UNKNOWN_ROLE',
};

export function protocolStatusName(status: number): string {
  return PROTOCOL_STATUS_NAMES[status] ?? `protocol status ${status}`;
}

/** Spec 4.1: the variables an FCGI_GET_VALUES query may ask for. */
export const ValueName = {
  MaxConns: 'FCGI_MAX_CONNS',
  MaxReqs: 'FCGI_MAX_REQS',
  MpxsConns: 'FCGI_MPXS_CONNS',
} as const;

/** A decoded record header. */
export interface RecordHeader {
  version: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
}

/** FCGI_BeginRequestBody, decoded. */
export interface BeginRequestBody {
  role: number;
  keepConn: boolean;
}

/** FCGI_EndRequestBody, decoded. */
export interface EndRequestBody {
  appStatus: number;
  protocolStatus: number;
}

/** A name-value pair as carried in PARAMS, GET_VALUES and GET_VALUES_RESULT. */
export type ParamValue = string | Buffer;
export type ParamPairs = Iterable<readonly [string, ParamValue]> | Readonly<Record<string, ParamValue>>;
