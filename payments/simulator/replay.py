"""``PayPal-Request-Id`` replay, as PayPal does it for create, capture and refund.

A call repeated with the request id of an earlier successful one gets that first answer again (200,
with ``X-Simulator-Replay: true``) and changes nothing. Only successful answers are kept, so a retry
after an error is processed afresh.
"""

from __future__ import annotations

import functools
import json

from payments.simulator.answers import Answer
from payments.simulator.store import Store


def _again(first: Answer) -> Answer:
    return Answer(200, json.loads(json.dumps(first.body)), {"X-Simulator-Replay": "true"})


def replayed(operation: str):
    """Make ``operation(store, [resource_id,] ...)`` answer a repeated ``request_id`` with its first answer.

    The wrapped function takes the store, then the resource's id (the order's for a capture, the
    capture's for a refund; none for a create) as its only positional argument, then keywords; the
    wrapper adds the keyword ``request_id``. Check, work and remembering run under the store's one
    lock: two racing requests with one request id get one outcome.
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(store: Store, *args, request_id: str | None, **kwargs) -> Answer:
            key = (operation, args[0] if args else "", request_id)
            with store.lock:
                first = store.replays.get(key) if request_id else None
                if first is not None:
                    return _again(first)
                answer = function(store, *args, **kwargs)
                if request_id and 200 <= answer.status < 300:
                    store.replays[key] = answer
                return answer

        return wrapper

    return decorate
