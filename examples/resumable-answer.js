// A resumable answer on a web page: follows a channel of sse-edge that streams an answer
// token by token and ends, and survives reloads. Plain JavaScript, no build step:
//
//   import { followAnswer } from 'https://<your worker>/examples/resumable-answer.js';
//   const answer = followAnswer('https://<your worker>/channels/answer-42/events', {
//     onText: (text) => { output.textContent = text; },
//     onEnd: () => { status.textContent = 'done'; },
//   });
//
// It reads the answer from its start, so that a page may start listening after the answer
// began. What it keeps, in `sessionStorage` by default (one entry per stream URL): the
// text so far and the id of the last token. A page reloaded in the middle shows that text
// at once and resumes after that id (`?lastEventId=`, since an EventSource cannot set the
// header on its first connection), so every token is shown once, in order. On `end` it stops
// listening for good and remembers that the answer is complete: a later load shows it
// without connecting. Were a connection made after the end anyway, the service would
// answer 204, which ends an EventSource for good too.
//
// A `gap` (the service no longer keeps part of what this page missed) is passed to
// `onGap` with its data; the text goes on with what comes after the hole.

const DEFAULT_TYPES = ['message', 'token'];

/**
 * @param {string} url  the channel's stream, `.../channels/{name}/events` (with
 *   `?token=` when the service needs one)
 * @param {object} [options]
 * @param {(text: string) => void} [options.onText]  the whole text so far, after each token
 * @param {() => void} [options.onEnd]  the answer is complete
 * @param {(gap: {lastEventId: string, firstAvailableId: string|null}) => void} [options.onGap]
 * @param {(status: 'connecting'|'streaming'|'resumed'|'ended'|'failed') => void} [options.onStatus]
 * @param {string[]} [options.types]  the event types that carry the answer's text
 * @param {Storage} [options.storage]  where the state is kept (`sessionStorage`)
 * @returns {{ close: () => void, text: () => string, done: Promise<string> }}
 *   `done` resolves with the whole text at `end`, and rejects when the stream fails for
 *   good (the service refused it).
 */
export function followAnswer(url, options = {}) {
  const {
    onText = () => {},
    onEnd = () => {},
    onGap = () => {},
    onStatus = () => {},
    types = DEFAULT_TYPES,
    storage = globalThis.sessionStorage,
  } = options;
  const key = `sse-edge-answer:${url}`;
  const state = read(storage, key) ?? { text: '', lastEventId: null, ended: false };
  const save = () => write(storage, key, state);
  let settle;
  const done = new Promise((resolve, reject) => { settle = { resolve, reject }; });
  // Callers that only listen to the callbacks need not catch a failure.
  done.catch(() => {});
  const finish = () => {
    state.ended = true;
    save();
    onStatus('ended');
    onEnd();
    settle.resolve(state.text);
  };

  if (state.text) onText(state.text);
  if (state.ended) {
    finish();
    return { close() {}, text: () => state.text, done };
  }

  // An answer is read from its start (0) the first time, so that no token published
  // before the connection is made is missed; after a reload, from the last one shown.
  const resuming = state.lastEventId !== null;
  const source = new EventSource(withLastEventId(url, state.lastEventId ?? '0'));
  onStatus('connecting');
  source.onopen = () => onStatus(resuming ? 'resumed' : 'streaming');
  const onToken = (event) => {
    state.text += event.data;
    state.lastEventId = event.lastEventId;
    save();
    onText(state.text);
  };
  for (const type of types) source.addEventListener(type, onToken);
  source.addEventListener('gap', (event) => onGap(JSON.parse(event.data)));
  source.addEventListener('end', (event) => {
    source.close();
    state.lastEventId = event.lastEventId;
    finish();
  });
  source.onerror = async () => {
    // CONNECTING: it reconnects by itself, with the last id. CLOSED: refused for good,
    // which a 204 also does: the page has every token, but reloaded before `end` came.
    if (source.readyState !== EventSource.CLOSED || state.ended) return;
    const asked = await fetch(withLastEventId(url, state.lastEventId ?? '0'), { cache: 'no-store' })
      .then((r) => { r.body?.cancel(); return r.status; }, () => 0);
    if (asked === 204) {
      finish();
    } else {
      onStatus('failed');
      settle.reject(new Error(`the answer's stream at ${url} was refused (${asked || 'no answer'})`));
    }
  };
  return {
    close: () => source.close(),
    text: () => state.text,
    done,
  };
}

/** Forgets what was kept of the answer at `url` (to show it again from the start). */
export function forgetAnswer(url, storage = globalThis.sessionStorage) {
  storage?.removeItem(`sse-edge-answer:${url}`);
}

function withLastEventId(url, id) {
  const u = new URL(url, globalThis.location?.href);
  u.searchParams.set('lastEventId', id);
  return u.toString();
}

function read(storage, key) {
  try {
    const kept = JSON.parse(storage?.getItem(key) ?? 'null');
    return kept && typeof kept.text === 'string' ? kept : null;
  } catch {
    return null;
  }
}

function write(storage, key, state) {
  try {
    storage?.setItem(key, JSON.stringify(state));
  } catch {
    // Storage full or refused: the answer goes on, it just will not survive a reload.
  }
}
