// Whether something accepts connections at an address: one connect attempt, its own outcome awaited.

import net from 'node:net';
import type { Address } from '../fastcgi/address.js';

export function canConnect(address: Address, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = 'path' in address ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
