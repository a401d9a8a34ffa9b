"""What happens to one stream: sources, tracking, smoothing, crops, sessions, sinks, CLI."""
