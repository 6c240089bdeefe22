"""Node-to-node transport: the wire codec and the gRPC streams that carry it."""
