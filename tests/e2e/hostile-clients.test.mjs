// What an attacker or a careless client tries, and what the service must do instead:
// stats without credentials, storage made from nothing, forged `gap` notices, repeated
// JSON keys, form fields that are not UTF-8, expired history replayed, ids reused after
// a crash, and dead connections holding every listener slot.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startServer } from '../support/server.mjs';
import { objectDatabases, readDatabase } from '../support/storage.mjs';
import { request, sleep, openRawListener, publish, publishJson } from '../support/http.mjs';
import { openStream } from '../support/sse.mjs';

const LISTEN_SECRET = 'listen-s3cret';
const PUBLISH_SECRET = 'publish-s3cret';

/** The SQLite files of the Channel objects under a persist directory. */
const channelDatabases = (persistDir) => objectDatabases(persistDir, 'Channel');

/** The tables a file holds, the runtime's own and SQLite's left out. */
function userTables(file) {
  return readDatabase(file, 'print("\\n".join(r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type=\'table\'")))')
    .split('\n')
    .filter((name) => name && !name.startsWith('_') && !name.startsWith('sqlite_'));
}

const FORM = 'application/x-www-form-urlencoded';
const form = (baseUrl, channel, body) => publish(baseUrl, channel, { body, contentType: FORM });
const text = (baseUrl, channel, body, query = '') => publish(baseUrl, channel, { body, contentType: 'text/plain', query });
const json = (baseUrl, channel, body) => publish(baseUrl, channel, { body, contentType: 'application/json' });

describe('with LISTEN_SECRET and PUBLISH_SECRET set', () => {
  let server;
  before(async () => {
    server = await startServer({ secrets: { LISTEN_SECRET, PUBLISH_SECRET } });
  });
  after(() => server?.stop());

  test('stats need the listen token or the publish bearer: missing 401, wrong 403', async () => {
    const url = `${server.url}/channels/guarded`;
    assert.equal((await request(url)).status, 401);
    assert.equal((await request(`${url}?token=wrong`)).status, 403);
    assert.equal((await request(url, { headers: { authorization: 'Bearer wrong' } })).status, 403);
    assert.equal((await request(url, { headers: { authorization: `Bearer ${LISTEN_SECRET}` } })).status, 403,
      'the listen secret is not a publish bearer');
    const byToken = await request(`${url}?token=${LISTEN_SECRET}`);
    assert.equal(byToken.status, 200, byToken.text);
    assert.equal(byToken.json.channel, 'guarded');
    const byBearer = await request(url, { headers: { authorization: `Bearer ${PUBLISH_SECRET}` } });
    assert.equal(byBearer.status, 200, byBearer.text);
  });

  test('unauthenticated stats on 30 unused names create no object storage', async () => {
    const before = channelDatabases(server.persistDir).length;
    for (let i = 0; i < 30; i++) {
      const r = await request(`${server.url}/channels/probe-${i}`);
      assert.equal(r.status, 401);
    }
    assert.equal(channelDatabases(server.persistDir).length, before);
  });
});

describe('without secrets', () => {
  let server;
  before(async () => {
    server = await startServer({ vars: { MAX_LISTENERS: '10', HEARTBEAT_SECONDS: '60', MERCURE_ANONYMOUS: '1' } });
  });
  after(() => server?.stop());

  test('stats of unused channels read nothing into storage; a publish does', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await request(`${server.url}/channels/unused-${i}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.listeners, 0);
      assert.equal(r.json.lastId, null);
    }
    const withData = () => channelDatabases(server.persistDir).filter((f) => userTables(f).length > 0);
    assert.deepEqual(withData(), [], 'a stats request wrote tables');
    assert.equal((await publishJson(server.url, 'used', { data: 'x' })).status, 200);
    assert.equal(withData().length, 1, 'the check sees a channel that was written to');
  });

  test('the gap type is the service\'s own: publishing it is refused in every body kind', async () => {
    const channel = 'forgery';
    const listener = await openStream(`${server.url}/channels/${channel}/events`);
    try {
      for (const r of [
        await publishJson(server.url, channel, { data: 'reload everything', event: 'gap' }),
        await form(server.url, channel, 'data=reload&event=gap'),
        await text(server.url, channel, 'reload', '?event=gap'),
      ]) {
        assert.equal(r.status, 400, r.text);
        assert.match(r.text, /reserved/);
      }
      const ok = await publishJson(server.url, channel, { data: 'real', event: 'Gap' });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.id, '1', 'refused publishes took no id');
      const event = await listener.nextEvent(5000);
      assert.deepEqual([event.type, event.data, event.lastEventId], ['Gap', 'real', '1']);
    } finally {
      await listener.close();
    }
  });

  test('a repeated JSON key is a 400, as a repeated form field is', async () => {
    for (const body of ['{"data":"a","data":"b"}', '{"data":"a","event":"x","event":"y"}']) {
      const r = await json(server.url, 'dupes', body);
      assert.equal(r.status, 400, body);
      assert.match(r.text, /more than once/);
    }
    assert.equal((await form(server.url, 'dupes', 'data=a&data=b')).status, 400);
    assert.equal((await request(`${server.url}/channels/dupes`)).json.lastId, null, 'nothing was published');
  });

  test('form fields that are not UTF-8 once percent-decoded are a 400, not altered', async () => {
    for (const body of ['data=%FF%FE', 'data=ok&event=%C3', 'd%FFta=x']) {
      const r = await form(server.url, 'forms', body);
      assert.equal(r.status, 400, `${body}: ${r.text}`);
      assert.match(r.text, /UTF-8/);
    }
    const good = await form(server.url, 'forms', 'data=%C3%A9t%C3%A9');
    assert.equal(good.status, 200, good.text);
  });

  test('when every slot is held by a dead connection, a newcomer is let in, not refused', async () => {
    const channel = 'full-of-dead';
    const dead = [];
    for (let i = 0; i < 10; i++) dead.push(await openRawListener(server.url, `/channels/${channel}/events`));
    for (const d of dead) assert.match(d.statusLine, / 200 /);
    await sleep(200);
    for (const d of dead) d.socket.resetAndDestroy();
    // The keep-alive comes every 20 s here, so only probing on arrival can find them.
    const newcomer = await openStream(`${server.url}/channels/${channel}/events`);
    try {
      assert.equal(newcomer.status, 200, 'the newcomer was refused while every listener was dead');
    } finally {
      await newcomer.close();
    }
    // A channel full of live listeners still refuses, with Retry-After.
    const live = [];
    try {
      for (let i = 0; i < 10; i++) live.push(await openStream(`${server.url}/channels/full-of-live/events`));
      const refused = await request(`${server.url}/channels/full-of-live/events`);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('retry-after'), '5');
      for (const l of live) assert.equal(l.ended, false, 'probing must not cut live listeners');
    } finally {
      await Promise.all(live.map((l) => l.close()));
    }
  });

  test('the Mercure hub too: a hub full of dead connections lets a newcomer in; one full of live ones answers 503', async () => {
    const hub = (topic) => `/.well-known/mercure?topic=${encodeURIComponent(topic)}`;
    const dead = [];
    for (let i = 0; i < 10; i++) dead.push(await openRawListener(server.url, hub(`https://example.com/dead/${i}`)));
    for (const d of dead) assert.match(d.statusLine, / 200 /);
    await sleep(200);
    for (const d of dead) d.socket.resetAndDestroy();
    const newcomer = await openStream(`${server.url}${hub('https://example.com/new')}`);
    try {
      assert.equal(newcomer.status, 200, 'the newcomer was refused while every subscriber was dead');
    } finally {
      await newcomer.close();
    }
    await sleep(200);
    const live = [];
    try {
      // The newcomer's slot frees once its close is seen; fill all ten with live ones.
      for (let i = 0; i < 10; i++) {
        const s = await openStream(`${server.url}${hub(`https://example.com/live/${i}`)}`);
        assert.equal(s.status, 200, `live subscriber ${i}`);
        live.push(s);
      }
      const refused = await request(`${server.url}${hub('https://example.com/one-too-many')}`);
      assert.equal(refused.status, 503, refused.text);
      assert.equal(refused.headers.get('retry-after'), '5');
      for (const l of live) assert.equal(l.ended, false, 'probing must not cut live subscribers');
    } finally {
      await Promise.all(live.map((l) => l.close()));
    }
  });
});

test('replay never serves events older than HISTORY_MAX_AGE_SECONDS, and says gap', { timeout: 60_000 }, async () => {
  // Keep-alives every 20 min: nothing prunes in the background during the test.
  const server = await startServer({ vars: { HISTORY_MAX_AGE_SECONDS: '1', HEARTBEAT_SECONDS: '3600' } });
  try {
    for (let i = 1; i <= 5; i++) assert.equal((await publishJson(server.url, 'aging', { data: `old ${i}` })).status, 200);
    await sleep(2500);
    const resumed = await openStream(`${server.url}/channels/aging/events`, { headers: { 'last-event-id': '0' } });
    try {
      const first = await resumed.nextEvent(5000);
      assert.equal(first.type, 'gap');
      assert.deepEqual(JSON.parse(first.data), { lastEventId: '0', firstAvailableId: null });
      assert.equal((await publishJson(server.url, 'aging', { data: 'fresh' })).status, 200);
      const next = await resumed.nextEvent(5000);
      assert.deepEqual([next.data, next.lastEventId], ['fresh', '6'], 'no expired event was replayed');
    } finally {
      await resumed.close();
    }
  } finally {
    await server.stop();
  }
});

test('PUBLISH_ACK=accepted, kill -9 in a publish storm: no id is ever given twice, and a resume says gap', { timeout: 180_000 }, async () => {
  const persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-crash-'));
  const vars = { PUBLISH_ACK: 'accepted' };
  try {
    let server = await startServer({ vars, persistDir });
    const acked = [];
    let stop = false;
    const publisher = async () => {
      while (!stop) {
        try {
          const r = await fetch(`${server.url}/channels/storm/events`, {
            method: 'POST', headers: { 'content-type': 'text/plain' }, body: `e${acked.length}`,
            signal: AbortSignal.timeout(5000),
          });
          if (r.status !== 200) break;
          acked.push(BigInt((await r.json()).id));
        } catch {
          break; // the server is gone
        }
      }
    };
    const storm = Promise.all(Array.from({ length: 16 }, publisher));
    while (acked.length < 300) await sleep(10);
    process.kill(-server.pid, 'SIGKILL');
    stop = true;
    await storm;
    await server.stop();
    const maxAcked = acked.reduce((a, b) => (a > b ? a : b));

    server = await startServer({ vars, persistDir });
    try {
      const after = await text(server.url, 'storm', 'after the crash');
      assert.equal(after.status, 200, after.text);
      assert.ok(BigInt(after.json.id) > maxAcked, `id ${after.json.id} reused: ${maxAcked} was acknowledged before the crash`);
      // Events stored but not yet answered when the process died come first; somewhere
      // before "after the crash" the ids skip what may have been handed out and lost,
      // and a gap notice stands exactly there.
      const resumed = await openStream(`${server.url}/channels/storm/events`, { headers: { 'last-event-id': String(maxAcked) } });
      try {
        const seen = [];
        while (seen.at(-1)?.data !== 'after the crash') seen.push(await resumed.nextEvent(5000));
        const gapAt = seen.findIndex((e) => e.type === 'gap');
        assert.ok(gapAt >= 0, `no gap resuming after ${maxAcked}: ${JSON.stringify(seen)}`);
        const before = seen.slice(0, gapAt).map((e) => BigInt(e.lastEventId));
        const gap = JSON.parse(seen[gapAt].data);
        assert.equal(gap.lastEventId, String(before.at(-1) ?? maxAcked));
        assert.equal(gap.firstAvailableId, after.json.id);
        assert.deepEqual(seen.slice(gapAt + 1).map((e) => e.lastEventId), [after.json.id]);
        before.forEach((id, i) => assert.equal(id, maxAcked + BigInt(i) + 1n, 'stored events replay in order'));
      } finally {
        await resumed.close();
      }
    } finally {
      await server.stop();
    }
  } finally {
    await rm(persistDir, { recursive: true, force: true });
  }
});

test('ids continue across a restart even when every event has expired from history', { timeout: 120_000 }, async () => {
  const persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-expired-'));
  const vars = { HISTORY_MAX_AGE_SECONDS: '1' };
  try {
    let server = await startServer({ vars, persistDir });
    for (let i = 1; i <= 3; i++) assert.equal((await publishJson(server.url, 'expiring', { data: `e${i}` })).json.id, String(i));
    await sleep(1500);
    // Reading the stats applies the age limit: nothing is kept any more.
    assert.equal((await request(`${server.url}/channels/expiring`)).json.historyLength, 0);
    await server.stop();
    server = await startServer({ vars, persistDir });
    try {
      const r = await publishJson(server.url, 'expiring', { data: 'after' });
      assert.equal(r.json.id, '4', 'the id after 3 is 4, though no event was kept');
    } finally {
      await server.stop();
    }
  } finally {
    await rm(persistDir, { recursive: true, force: true });
  }
});
