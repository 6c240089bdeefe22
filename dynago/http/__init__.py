"""The node's HTTP admin API."""
