"""Who runs which push, across workers and nodes: the live registry, node liveness and the
stale-push sweep, cluster-wide jobs such as retention."""
