// Pipes an answer that arrives over time (a model's streamed reply, a build's output:
// any async iterator of text) into a channel of sse-edge, with one streaming publish that
// ends the channel when the answer is done. Each piece becomes one event, published as
// it arrives. Runs on Node 20+, Deno, Bun and Workers (fetch with a streamed body).
//
//   import { pipeAnswer } from './pipe-answer.mjs';
//   const answer = await pipeAnswer('https://<your worker>', 'answer-42', model.stream(prompt), {
//     secret: process.env.PUBLISH_SECRET,
//   });
//   // { firstId: '1', lastId: '812', count: 812, listeners: 3, ended: true }
//
// The request fails (and the pieces sent so far stay published) when the service stops
// the stream: a piece it refuses (400), one past MAX_BODY_BYTES or a body past
// MAX_STREAM_BYTES (413), or a gap longer than STREAM_STALL_SECONDS between two pieces
// (408). A piece of text is sent as `{"data": piece, "event": type}`; an object is sent as
// it is (`{data, event, retry}`).

/**
 * @param {string} baseUrl  the service, e.g. `https://sse.example.workers.dev`
 * @param {string} channel
 * @param {AsyncIterable<string | {data: unknown, event?: string, retry?: number}>} pieces
 * @param {object} [options]
 * @param {string} [options.secret]  the publish secret (`PUBLISH_SECRET`), when set
 * @param {string} [options.event]  the event type of text pieces (`token`)
 * @param {boolean} [options.end]  end the channel once the answer is done (yes)
 * @param {typeof fetch} [options.fetch]
 * @returns {Promise<{firstId: string|null, lastId: string|null, count: number, listeners: number, ended?: boolean}>}
 */
export async function pipeAnswer(baseUrl, channel, pieces, options = {}) {
  const { secret, event = 'token', end = true, fetch: send = globalThis.fetch } = options;
  const encoder = new TextEncoder();
  const iterator = pieces[Symbol.asyncIterator]();
  const body = new ReadableStream({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) {
        controller.close();
        return;
      }
      const fields = typeof value === 'string' ? { data: value, event } : value;
      controller.enqueue(encoder.encode(`${JSON.stringify(fields)}\n`));
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
  const url = new URL(`/channels/${encodeURIComponent(channel)}/events`, baseUrl);
  url.searchParams.set('stream', '1');
  if (end) url.searchParams.set('end', '1');
  const headers = { 'content-type': 'application/x-ndjson' };
  if (secret) headers.authorization = `Bearer ${secret}`;
  const response = await send(url, { method: 'POST', headers, body, duplex: 'half' });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`streaming publish to ${channel}: ${response.status} ${text.trim()}`);
  }
  return JSON.parse(text);
}
