/**
 * Small servers that test/support/netns.ts runs inside a network namespace (plain node, no
 * TypeScript, so that they start fast). Each prints "ready" on stdout once it listens.
 *
 *   node netns-child.mjs backends HOST NAME=PORT...   one HTTP server per NAME that answers
 *                                                      every request with NAME (who answered)
 *   node netns-child.mjs relay SOCKET=HOST:PORT...     forwards each unix socket to HOST:PORT
 *
 * The relay is how the test, which stays in the machine's own namespace, reaches a server in a
 * namespace: a unix socket is a file, and files are shared across network namespaces.
 */
import { createServer as createHttpServer } from "node:http";
import { connect, createServer } from "node:net";

const [mode, ...rest] = process.argv.slice(2);

function pairs(list, sep) {
  return list.map((arg) => {
    const i = arg.lastIndexOf(sep);
    if (i <= 0) throw new Error(`expected A${sep}B, got ${JSON.stringify(arg)}`);
    return [arg.slice(0, i), arg.slice(i + 1)];
  });
}

const listening = [];
if (mode === "backends") {
  const [host, ...names] = rest;
  for (const [name, port] of pairs(names, "=")) {
    const server = createHttpServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(name);
      });
    });
    listening.push(new Promise((r) => server.listen(Number(port), host, r)));
  }
} else if (mode === "relay") {
  for (const [socket, target] of pairs(rest, "=")) {
    const [host, port] = pairs([target], ":")[0];
    const server = createServer((client) => {
      const upstream = connect(Number(port), host);
      // Either side's end or error ends both: a refused target shows as a closed connection.
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    listening.push(new Promise((r) => server.listen(socket, r)));
  }
} else {
  throw new Error(`unknown mode ${JSON.stringify(mode)}: backends or relay`);
}
await Promise.all(listening);
process.stdout.write("ready\n");
