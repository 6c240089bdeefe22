"""dynago: a leaderless cluster membership node (pykka actors over gRPC streams)."""

__version__ = "0.1.0"
