"""Operating a node: settings sources, logs, metrics and event handlers."""
