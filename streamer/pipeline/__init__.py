"""The pipeline: one stream end to end (the session and its stages), the shared model
replicas and their batching, and what a run sets up (Ray, an embedded Redis, sinks).

The serving side owns processes, Ray and I/O here; what it computes per stream lives in
sources/, tracking/, persons/ and data/ below it."""
