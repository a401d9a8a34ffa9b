"""Sources: where frames come from (files, RTSP and HTTP live streams) and the policy on which may be opened.

Below the pipeline and above nothing but the config: a source hands out `Frame`s and
`SourceStats` and fails with a `SourceError`; it knows nothing of faces."""
