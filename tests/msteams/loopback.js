// Keeps the Microsoft 365 Agents Playground on this machine: `node --require ./loopback.js …/cli.js`.
//
// The Playground (0.2.28) has no host option: its server calls `server.listen(port)`, which listens on
// every interface, so anyone on the network could drive the bot through it. Every server it opens is bound
// to 127.0.0.1 here instead. It should need nothing beyond this machine either (with --disable-telemetry):
// a connection to any other address is refused here and said on stderr, where the test looks for it.
"use strict";
const net = require("net");

const LOOPBACK = "127.0.0.1";
const LOCAL_NAMES = new Set(["localhost", "::1", "", undefined]);

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !("_handle" in first) && !("fd" in first)) {
    args[0] = { ...first, host: LOOPBACK }; // listen({ port, host, … })
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] === "string") args[1] = LOOPBACK; // listen(port, host, …)
    else args.splice(1, 0, LOOPBACK); // listen(port, callback): every interface without a host
  }
  return listen.apply(this, args);
};

function isLocal(host) {
  return LOCAL_NAMES.has(host) || /^127\./.test(host) || host === "::ffff:127.0.0.1";
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  // Node passes [options, callback] as one array from net.connect; callers may pass (options), (port, host).
  const options = Array.isArray(args[0]) ? args[0][0] : args[0];
  const host = options !== null && typeof options === "object" ? options.host : args[1];
  const path = options !== null && typeof options === "object" ? options.path : undefined;
  if (!path && !isLocal(host)) {
    process.stderr.write(`loopback.js: refused a connection to ${host}\n`);
    const error = new Error(`loopback.js: ${host} is not on this machine`);
    error.code = "ECONNREFUSED";
    process.nextTick(() => this.destroy(error));
    return this;
  }
  return connect.apply(this, args);
};
