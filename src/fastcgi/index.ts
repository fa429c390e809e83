// The FastCGI library's public surface: codec, client, client pool and server.

export * from './protocol.js';
export * from './records.js';
export * from './params.js';
export * from './decoder.js';
export * from './address.js';
export * from './allow-list.js';
export * from './client.js';
export * from './client-pool.js';
export * from './server.js';
