"""Detection: the series type, the nine algorithms and their pinned numerics, the reference and batched
engines, and :func:`skyline_analyzer.detection.engine.analyse`, the one entry point. Pure: no Redis, no files,
no process-wide effects; what the algorithms did is handed to the caller's recorder."""
