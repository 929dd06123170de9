// Preloaded by scripts/spotlight.sh (NODE_OPTIONS=--require): Spotlight has no host option and
// listens on every interface; this makes a listen() that names no host use 127.0.0.1 (or
// SPOTLIGHT_HOST), so the viewer, which shows users' errors and requests, stays on loopback.
'use strict';
const net = require('node:net');

const listen = net.Server.prototype.listen;
const host = process.env.SPOTLIGHT_HOST || '127.0.0.1';

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const [first] = args;
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (args.length < 2 || args[1] === undefined || args[1] === null) {
      args[1] = host;
    } else if (typeof args[1] !== 'string') {
      args.splice(1, 0, host); // listen(port, callback) or listen(port, backlog, ...)
    }
  } else if (first && typeof first === 'object' && !('path' in first) && !('fd' in first) && !('handle' in first)) {
    if (first.host === undefined) args[0] = { ...first, host };
  }
  return listen.apply(this, args);
};
