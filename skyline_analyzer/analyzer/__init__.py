"""The Analyzer daemon: the run loop, the worker pool and its workers, the per-run outputs, the algorithm
run-metric files and the Redis bookkeeping around a verdict (stale candidates, second-order history)."""
