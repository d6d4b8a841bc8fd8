"""
Media plumbing shared by the RTSP server, voicemail and the PSAP: G.711,
audio files and RTP / RTCP.
"""
