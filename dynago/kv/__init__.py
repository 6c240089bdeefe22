"""The Dynamo-style key-value store's rules: the ring (ring.py, claim.py, members.py),
versions (version.py), request state machines (requests.py), the shared vocabulary
(model.py, messages.py, config.py, stats.py). These are pure: no pykka, grpc, ``time``,
global ``random`` or I/O. Beside them, ``client.py`` is the HTTP client for users. The
storage engines live in ``dynago.storage``, the actors in ``dynago.actors`` (kv*.py,
storage.py) and the HTTP routes in ``dynago.http``.
"""
