"""The data contract: `FaceRecord`, its Arrow (Parquet) and Redis encodings, the stream
events, the sinks that write them and the readers (dataset, tail) that read them back."""
