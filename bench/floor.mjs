// The runtime's floor: the least a Worker and a Durable Object can do to hold event
// streams open and to publish to them, to measure the product against in the same run.
// `node bench/miniflare.mjs --floor` serves it in place of the product, with the
// product's compatibility date and its Durable Object binding (class `Channel`, SQLite).
//
//   GET /channels/{name}/events   a text/event-stream response from the channel's object,
//                                 which writes `retry: 1000` (as the product does first)
//                                 and keeps the stream's writer
//   POST /channels/{name}/events  publish: the object reads the JSON body's `data`, gives
//                                 it the next id, queues an `id:`/`data:` frame, and
//                                 answers {"id":"<n>"}; frames queued since the last
//                                 flush go to each listener as one write, once the object
//                                 is idle (setTimeout 0), as the product batches them
//   GET /channels/{name}          {"listeners": n}: creates the object before the
//                                 benchmark's first memory sample, and counts its streams
//
// Variables:
//   FLOOR_SQL=1             each publish also inserts its event into a SQLite table
//                           (created once per object), so the answer waits for the
//                           commit like the product's PUBLISH_ACK=stored
//   FLOOR_KEEP_ALIVE_MS=n   writes a `: keep-alive` comment to every stream every n ms,
//                           as the product does every HEARTBEAT_SECONDS / 3
//
// It keeps no history: a listener that reconnects gets live events only.

const encoder = new TextEncoder();
const RETRY = encoder.encode("retry: 1000\n\n");
const KEEP_ALIVE = encoder.encode(": keep-alive\n\n");

export class Channel {
  constructor(state, env) {
    this.state = state;
    this.writers = [];
    this.keepAliveMs = Number(env.FLOOR_KEEP_ALIVE_MS ?? 0);
    this.sql = env.FLOOR_SQL === "1" ? state.storage.sql : null;
    this.tableReady = false;
    this.nextId = 1;
    this.pending = [];
    this.flushScheduled = false;
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/stats") {
      return Response.json({ listeners: this.writers.length });
    }
    if (path === "/publish") {
      return this.publish(await request.text());
    }
    return this.listen();
  }

  listen() {
    if (this.keepAliveMs > 0 && this.timer === undefined) {
      this.timer = setInterval(() => {
        for (const writer of this.writers) writer.write(KEEP_ALIVE).catch(() => {});
      }, this.keepAliveMs);
    }
    const { readable, writable } = new TransformStream();
    const writer = writable.getWriter();
    // Not awaited: with nobody reading yet it resolves only once the client takes it.
    writer.write(RETRY).catch(() => {});
    this.writers.push(writer);
    return new Response(readable, {
      headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" },
    });
  }

  publish(body) {
    let data;
    try {
      data = JSON.parse(body).data;
    } catch {
      return new Response("bad JSON\n", { status: 400 });
    }
    if (data === undefined) return new Response("no data\n", { status: 400 });
    if (typeof data !== "string") data = JSON.stringify(data);
    const id = this.nextId++;
    if (this.sql) {
      if (!this.tableReady) {
        this.sql.exec("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, data TEXT NOT NULL)");
        this.tableReady = true;
      }
      this.sql.exec("INSERT INTO events (id, data) VALUES (?, ?)", id, data);
    }
    // One line of data: the bench's data has no line breaks.
    this.pending.push(`id: ${id}\ndata: ${data}\n\n`);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setTimeout(() => this.flush(), 0);
    }
    return Response.json({ id: String(id) });
  }

  flush() {
    this.flushScheduled = false;
    const chunk = encoder.encode(this.pending.join(""));
    this.pending = [];
    for (const writer of this.writers) writer.write(chunk).catch(() => {});
  }
}

export default {
  fetch(request, env) {
    const match = /^\/channels\/([A-Za-z0-9_.-]{1,64})(\/events)?$/.exec(new URL(request.url).pathname);
    if (!match) return new Response("not found\n", { status: 404 });
    const events = match[2] !== undefined;
    let target;
    if (request.method === "GET") target = events ? "listen" : "stats";
    else if (request.method === "POST" && events) target = "publish";
    else return new Response("not found\n", { status: 404 });
    const channel = env.CHANNEL.get(env.CHANNEL.idFromName(match[1]));
    if (target !== "publish") return channel.fetch(`https://channel.internal/${target}`);
    return channel.fetch("https://channel.internal/publish", { method: "POST", body: request.body });
  },
};
