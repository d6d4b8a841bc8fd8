"""
appliance: an all-in-one Internet telephony appliance on Twisted.

SIP proxy / registrar, voicemail, RTSP media store, DRM license endpoint and
PSAP controller, hosted as cooperating services on one reactor.
"""

__version__ = "0.1.0"
