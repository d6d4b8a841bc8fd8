"""
The echo test and the conference bridge against SIPp on 127.0.0.1 (issue 7,
verification): calls go through the appliance's proxy to its conference
user agent, RTP comes from SIPp's C{play_pcap_audio} and from the test's own
sockets, and what the appliance sends back is captured and compared.
"""

import os
import uuid

from tests.integration.harness import (
    ApplianceTestCase,
    runProgram,
    SharedAppliance,
    pickPorts,
    sipConfig,
)
from tests.integration.rtpmedia import Capture, goertzel, parseRTP, rtpPacket, toneFrames, writePcap
from tests.integration.sipp import Sipp, addUser, register, runSipp

AUDIO_SECONDS = 2


def _config(appliance):
    conferencePort = appliance.conferencePort = pickPorts(1)[0]
    base = 32000 + 100 * (conferencePort % 40)
    return sipConfig(
        appliance.dataDir, appliance.sipPort, appliance.tlsPort,
        extra="[conference]\nlisten = udp:%d:interface=127.0.0.1\nrtp_ports = %d-%d\n"
              "media_address = 127.0.0.1\nrecord = yes\n" % (conferencePort, base, base + 99),
    ).replace("services = sip\n", "services = sip conference\n")


_appliance = SharedAppliance(configText=_config)


class EchoTests(ApplianceTestCase):
    """
    C{echo@example.test} through the proxy.
    """

    def setUp(self):
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_echoReturnsEveryPacket(self):
        """
        Every RTP packet SIPp plays to echo@ comes back, in order, with the
        same payload and payload type, under the echo's own SSRC and with
        the caller's timing; re-INVITEs to hold (answered recvonly) and back
        (sendrecv) keep the call, and BYE along the route set ends it.
        """
        frames = toneFrames(440, AUDIO_SECONDS)
        sent = [rtpPacket(0, 1000 + n, 5000 + 160 * n, 0x11223344, frame, marker=(n == 0))
                for n, frame in enumerate(frames)]
        writePcap(os.path.join(self.directory, "audio.pcap"), sent)
        capture = Capture()
        self.addCleanup(capture.close)
        result = runSipp(
            "echo", "echo_call.xml", self.directory, self.appliance.sipPort, service="echo",
            arguments=["-key", "capture_port", str(capture.port)], timeout=20,
        )
        self.assertTrue(result.succeeded, result.describe())
        received = [parseRTP(data) for _, _, data in capture.collect(1.0, quiet=0.5)]
        self.assertEqual([r[5] for r in received], frames)
        self.assertEqual({r[0] for r in received}, {0})
        self.assertEqual(len({r[3] for r in received}), 1)
        self.assertNotEqual(received[0][3], 0x11223344)
        sequences = [r[1] for r in received]
        self.assertEqual([(b - a) & 0xFFFF for a, b in zip(sequences, sequences[1:])],
                         [1] * (len(frames) - 1))
        timestamps = [r[2] for r in received]
        self.assertEqual([(b - a) & 0xFFFFFFFF for a, b in zip(timestamps, timestamps[1:])],
                         [160] * (len(frames) - 1))
        self.assertTrue(received[0][4], "the marker of the first packet is kept")
        self.assertIn("a=recvonly", result.messages)


    def test_lateOffer(self):
        """
        An INVITE without SDP gets the echo's offer in the 200 (G.711 and
        telephone-event); the answer in the ACK says where to send, and
        every packet played comes back there.
        """
        frames = toneFrames(600, 1)
        writePcap(os.path.join(self.directory, "audio.pcap"),
                  [rtpPacket(0, n, 160 * n, 0x5151, frame) for n, frame in enumerate(frames)])
        capture = Capture()
        self.addCleanup(capture.close)
        result = runSipp(
            "late", "late_offer.xml", self.directory, self.appliance.sipPort, service="echo",
            arguments=["-key", "capture_port", str(capture.port)], timeout=20,
        )
        self.assertTrue(result.succeeded, result.describe())
        received = [parseRTP(data) for _, _, data in capture.collect(1.0, quiet=0.5)]
        self.assertEqual([r[5] for r in received], frames)

TONES = (440, 1000, 1700)


class RoomTests(ApplianceTestCase):
    """
    C{conf-<room>@example.test} through the proxy, with SIPp participants.
    """

    def setUp(self):
        self.appliance = _appliance.get()
        self.watchAppliance(self.appliance)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def _participant(self, index, room, frequency):
        directory = os.path.join(self.directory, "p%d" % (index,))
        os.makedirs(directory)
        frames = toneFrames(frequency, 3)
        writePcap(os.path.join(directory, "audio.pcap"),
                  [rtpPacket(0, n, 160 * n, 0x1000 + index, frame) for n, frame in enumerate(frames)])
        capture = Capture()
        self.addCleanup(capture.close)
        process = Sipp(
            "p%d" % (index,), "conf_call.xml", directory, localPort=pickPorts(1)[0],
            remotePort=self.appliance.sipPort, service=room, timeout=20,
            arguments=["-key", "capture_port", str(capture.port)],
        ).start()
        self.addCleanup(process.stop)
        return process, capture

    def test_eachHearsTheOthers(self):
        """
        Three participants sending 440, 1000 and 1700 Hz each receive the
        other two tones and not their own (Goertzel power at each
        frequency), while all three are in the room.
        """
        participants = [self._participant(i, "conf-trio", f) for i, f in enumerate(TONES)]
        for process, capture in participants:
            capture.collect(4.5, quiet=1.0)
        for process, _ in participants:
            result = process.wait()
            self.assertTrue(result.succeeded, result.describe())
        for (process, capture), own in zip(participants, TONES):
            payloads = [parseRTP(data)[5] for _, _, data in capture.datagrams]
            self.assertGreater(len(payloads), 100, "too little audio came back")
            # The middle second: every participant has joined and is talking.
            middle = b"".join(payloads[len(payloads) // 2 - 25:len(payloads) // 2 + 25])
            power = {f: goertzel(middle, f) for f in TONES}
            others = [power[f] for f in TONES if f != own]
            self.assertGreater(min(others), 50 * power[own], (own, power))
        self.checkRecording("trio")

    def checkRecording(self, room):
        """
        The room's recording is a mu-law .au file ffprobe reads, whose
        middle second holds all three tones.
        """
        directory = os.path.join(self.appliance.dataDir, "media", "conference", room)
        [name] = os.listdir(directory)
        path = os.path.join(directory, name)
        code, output = runProgram(["ffprobe", "-v", "error", "-show_entries",
                                   "stream=codec_name,sample_rate,channels", "-of", "csv=p=0", path])
        self.assertEqual((code, output.strip()), (0, "pcm_mulaw,8000,1"))
        with open(path, "rb") as f:
            header = f.read(24)
            self.assertEqual(header[:4], b".snd")
            f.seek(int.from_bytes(header[4:8], "big"))
            audio = f.read()
        self.assertGreater(len(audio), 2 * 8000)
        middle = audio[len(audio) // 2 - 4000:len(audio) // 2 + 4000]
        power = [goertzel(middle, f) for f in TONES]
        quiet = goertzel(middle, 2500)
        self.assertGreater(min(power), 50 * quiet, (power, quiet))

    def test_referInvitesIntoTheRoom(self):
        """
        A participant's REFER asks the room to invite a registered user
        (RFC 4579 section 5.5): 202, a NOTIFY with "100 Trying", the room's
        INVITE reaches the user through the proxy (From the room, with
        Referred-By and an offer), and a final NOTIFY with "200 OK" ends
        the implicit subscription.
        """
        invitee = "u%s@example.test" % (uuid.uuid4().hex[:8],)
        addUser(self.appliance, invitee)
        port = pickPorts(1)[0]
        register(self.appliance.sipPort, invitee, port)
        callee = Sipp("invitee", "uas_answer_hangup.xml", self.directory, localPort=port, timeout=15)
        self.addCleanup(callee.stop)
        callee.start().waitUntilListening()
        capture = Capture()
        self.addCleanup(capture.close)
        result = runSipp(
            "referrer", "conf_refer.xml", self.directory, self.appliance.sipPort, service="conf-refer",
            arguments=["-key", "capture_port", str(capture.port), "-key", "invitee", invitee.partition("@")[0]],
        )
        self.assertTrue(result.succeeded, result.describe())
        invited = callee.wait(10)
        self.assertTrue(invited.succeeded, invited.describe())
        invite = invited.receivedMessages()[0]
        self.assertTrue(invite.startswith("INVITE sip:"), invite)
        self.assertIn("From: <sip:conf-refer@example.test>;tag=", invite)
        self.assertIn("Referred-By: <sip:carol@elsewhere.test>", invite)
        self.assertIn("m=audio", invite)
