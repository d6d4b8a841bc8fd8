from twisted.application.service import ServiceMaker

appliance = ServiceMaker(
    "appliance",
    "appliance.tap",
    "All-in-one Internet telephony appliance (SIP, voicemail, RTSP, DRM, PSAP).",
    "appliance",
)
