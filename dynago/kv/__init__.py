"""The Dynamo-style key-value store: pure rules (ring, versions, request state machines,
storage engines) in this package; its actors live in ``dynago.actors`` and its HTTP routes
in ``dynago.http``. Nothing here imports pykka, grpc, ``time`` or the global ``random``.
"""
