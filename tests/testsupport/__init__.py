"""Helpers the tests share: generated clips, hostile media, servers and network namespaces."""
