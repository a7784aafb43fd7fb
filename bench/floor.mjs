// The runtime's floor for an idle listener: the least a Worker and a Durable Object can do
// to hold an event stream open, to measure the product's memory per listener against.
// `node bench/miniflare.mjs --floor` serves it in place of the product, with the
// product's compatibility date and its Durable Object binding (class `Channel`, SQLite).
//
//   GET /channels/{name}/events   a text/event-stream response from the channel's object,
//                                 which writes `retry: 1000` (as the product does first)
//                                 and keeps the stream's writer, nothing more
//   GET /channels/{name}          {"listeners": n}: creates the object before the
//                                 benchmark's first memory sample, and counts its streams
//
// With the variable FLOOR_KEEP_ALIVE_MS (e.g. `--var FLOOR_KEEP_ALIVE_MS:5000`) the object
// also writes a `: keep-alive` comment to every stream that often, as the product does
// every HEARTBEAT_SECONDS / 3: what a stream that has carried a few writes costs.

const RETRY = new TextEncoder().encode("retry: 1000\n\n");
const KEEP_ALIVE = new TextEncoder().encode(": keep-alive\n\n");

export class Channel {
  constructor(state, env) {
    this.writers = [];
    this.keepAliveMs = Number(env.FLOOR_KEEP_ALIVE_MS ?? 0);
  }

  fetch(request) {
    if (new URL(request.url).pathname === "/stats") {
      return Response.json({ listeners: this.writers.length });
    }
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
}

export default {
  fetch(request, env) {
    const match = /^\/channels\/([A-Za-z0-9_.-]{1,64})(\/events)?$/.exec(new URL(request.url).pathname);
    if (request.method !== "GET" || !match) {
      return new Response("not found\n", { status: 404 });
    }
    const channel = env.CHANNEL.get(env.CHANNEL.idFromName(match[1]));
    return channel.fetch(`https://channel.internal/${match[2] ? "listen" : "stats"}`);
  },
};
