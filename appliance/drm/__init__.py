"""
Protected messages: the package format, the key store, the rights model and
the HTTPS license server (docs/drm.md).
"""
