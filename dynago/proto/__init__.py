"""Wire protocol of dynago (membership.proto) and its generated code; see scripts/gen_proto.py."""
