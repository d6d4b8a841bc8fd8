"""
The RTSP media server (RFC 2326): the network face of the media store.
"""
