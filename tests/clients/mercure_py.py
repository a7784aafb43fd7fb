"""Drives third-party Mercure client libraries from PyPI for tests/e2e/mercure-clients.test.mjs.

One action per run; it prints JSON (one object per line) on stdout:

  publish-mp --hub URL --key KEY [--ttl S] [--allow SEL]... --topic T [--topic T]...
             [--data D] [--private] [--id ID] [--type TYPE] [--retry N]
      publishes with mercure-publisher's MercurePublisher (its own JWT, PyJWT, with exp);
      prints {"status": 200, "id": ...} or {"status": <code>, "body": ...}.
  publish-pymcure --hub URL --key KEY [--header JSON] [--payload JSON] [--unsigned]
             --topic T... [--data D] [--private] [--id ID] [--type TYPE]
      publishes with pymcure's SyncPublisher, which mints the token from --header and
      --payload (default: its own, {"mercure": {"publish": [], "subscribe": []}}); with
      --unsigned, PyJWT mints an `alg: none` token of --payload and SyncPublisher is given it
      as its mercure_jwt (pymcure always signs what it mints itself);
      prints {"returned": <what publish() returned: the answer's body>}, or
      {"status": 401|403, "body": ...} when it raised (pymcure raises on those two only).
  subscribe-pymcure --hub URL --topic T... --count N --timeout S
      subscribes with pymcure's Subscriber (anonymous, sseclient-py); prints {"ready": true}
      once the hub answered, then {"id", "event", "data"} per update, and exits after N of
      them or S seconds ({"timeout": true}).
"""

import argparse
import json
import queue
import sys


def out(obj):
    print(json.dumps(obj), flush=True)


def publish_mp(args):
    from mercure_publisher import MercureConfig, MercurePublisher, MercurePublishError

    config = MercureConfig(
        hub_url=args.hub,
        publisher_jwt_key=args.key,
        publish_topics=args.allow or ["*"],
        jwt_ttl_seconds=args.ttl,
        redis_config=None,
    )
    with MercurePublisher(config) as publisher:
        try:
            update_id = publisher.publish(
                args.topic if len(args.topic) > 1 else args.topic[0],
                args.data,
                private=args.private,
                id=args.id,
                type=args.type,
                retry=args.retry,
            )
        except MercurePublishError as err:
            out({"status": err.status_code, "body": err.response_body})
            return
    out({"status": 200, "id": update_id})


def publish_pymcure(args):
    from pymcure.client.exceptions import PublishRejectedError, UnauthorizedPublishedError
    from pymcure.client.message import Message
    from pymcure.client.publisher.sync import SyncPublisher

    options = {}
    if args.header is not None:
        options["header"] = json.loads(args.header)
    if args.payload is not None:
        options["payload"] = json.loads(args.payload)
    # SyncPublisher prints the hub URL on stdout: keep stdout for the JSON.
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        token = None
        if args.unsigned:
            import jwt

            token = jwt.encode(options.get("payload", {}), None, algorithm="none")
        publisher = SyncPublisher(args.hub, token, args.key, **options)
        message = Message(args.topic, args.data, private=args.private, message_id=args.id, event_type=args.type)
        try:
            result = {"returned": publisher.publish(message)}
        except UnauthorizedPublishedError as err:
            result = {"status": 401, "body": str(err)}
        except PublishRejectedError as err:
            result = {"status": 403, "body": str(err)}
    finally:
        sys.stdout = real_stdout
    out(result)


def subscribe_pymcure(args):
    from pymcure.client.subscriber.subscriber import Subscriber

    received = queue.Queue()
    subscriber = Subscriber(args.hub, args.topic, received.put)
    subscriber.daemon = True  # the stream never ends by itself
    subscriber.start_consumption()  # returns once the hub has answered
    out({"ready": True})
    for _ in range(args.count):
        try:
            message = received.get(timeout=args.timeout)
        except queue.Empty:
            out({"timeout": True})
            return
        out({"id": message.message_id, "event": message.event_type, "data": message.data})


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("publish-mp", "publish-pymcure"):
        p = sub.add_parser(name)
        p.add_argument("--hub", required=True)
        p.add_argument("--key", required=True)
        p.add_argument("--topic", action="append", required=True)
        p.add_argument("--data", default="")
        p.add_argument("--private", action="store_true")
        p.add_argument("--id")
        p.add_argument("--type")
        if name == "publish-mp":
            p.add_argument("--ttl", type=int, default=3600)
            p.add_argument("--allow", action="append")
            p.add_argument("--retry", type=int)
        else:
            p.add_argument("--header")
            p.add_argument("--payload")
            p.add_argument("--unsigned", action="store_true")
    p = sub.add_parser("subscribe-pymcure")
    p.add_argument("--hub", required=True)
    p.add_argument("--topic", action="append", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    {"publish-mp": publish_mp, "publish-pymcure": publish_pymcure, "subscribe-pymcure": subscribe_pymcure}[args.action](args)


if __name__ == "__main__":
    main()
