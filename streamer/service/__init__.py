"""The facestream service: stream lifecycle API on Ray Serve over shared model replicas."""
