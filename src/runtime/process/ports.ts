/**
 * Free TCP ports for instances. The OS picks a free port when a server binds port 0; the
 * allocator closes that server again and remembers the number, because two instances that
 * are allocated one after the other could otherwise be handed the same port by the OS before
 * either child has bound it.
 *
 * The window between closing the probe server and the child binding the port cannot be closed
 * from here (another program may take the port in between). It is small, and the child then
 * fails to listen, exits, and its instance shows "failed" with the exit code.
 */
import net from "node:net";

export class PortAllocator {
  private readonly taken = new Set<number>();

  constructor(private readonly host = "127.0.0.1") {}

  /** A port that is free now and not handed out by this allocator before (until released). */
  async allocate(): Promise<number> {
    // The OS rarely repeats a port soon, so a few attempts are plenty; the bound keeps a
    // pathological OS from spinning us forever.
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = await osFreePort(this.host);
      if (!this.taken.has(port)) {
        this.taken.add(port);
        return port;
      }
    }
    throw new Error(`no free port found on ${this.host} after 50 attempts`);
  }

  /**
   * Marks a port as handed out without asking the OS (it is in use already: an instance adopted
   * from a previous run listens on it). Returns false if this allocator had handed it out.
   */
  reserve(port: number): boolean {
    if (this.taken.has(port)) return false;
    this.taken.add(port);
    return true;
  }

  release(port: number): void {
    this.taken.delete(port);
  }

  /** Ports currently handed out (for diagnostics and tests). */
  get size(): number {
    return this.taken.size;
  }
}

function osFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close((err) => {
        if (err) reject(err);
        else if (port === 0) reject(new Error(`could not read the port bound on ${host}`));
        else resolve(port);
      });
    });
  });
}

/** Shared by every ProcessRuntime of this Node process, so two runtimes never collide either. */
export const defaultPortAllocator = new PortAllocator();
