"""
The DRM license server end to end: the real appliance under twistd, HTTPS on
loopback with its certificate checked, driven by C{appliancectl drm}, the
blocking client and curl.
"""

import json
import os
import re
import shutil
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.drm.client import ClientError, LicenseClient
from appliance.drm.license import kidFor, publicKeyPEM
from appliance.media.audiofile import writeFile
from tests.integration.harness import (
    ApplianceNotReady, ApplianceProcess, ApplianceTestCase, pickPorts, runProgram, scratchDirectory,
)
from tests.integration.sipp import addUser, appliancectl

PASSWORD = "drm-secret-1"
ALICE, BOB, CAROL, DAVE = ("alice@example.test", "bob@example.test", "carol@example.test",
                           "dave@example.test")


def _config(appliance):
    return (
        "[appliance]\n"
        "data_dir = {data}\n"
        "services = sip drm\n"
        "log_level = debug\n"
        "\n[sip]\n"
        "domains = example.test\n"
        "listen = udp:{sip}:interface=127.0.0.1 tcp:{sip}:interface=127.0.0.1\n"
        "\n[drm]\n"
        "listen = ssl:{drm}:interface=127.0.0.1\n"
        "rate_limit = 1000\n"
        "rate_burst = 1000\n"
    ).format(data=appliance.dataDir, sip=appliance.sipPort, drm=appliance.tlsPort)


def _newAppliance():
    sip, drm = pickPorts(2)
    return ApplianceProcess(configText=_config, sipPort=sip, tlsPort=drm, ready=([sip], [sip, drm]))


_state = {}


def sharedAppliance():
    """
    The module's appliance with its four users, started on first use and
    stopped when the test process exits.
    """
    appliance = _state.get("appliance")
    if appliance is None:
        import atexit

        appliance = _newAppliance()
        atexit.register(appliance.stop)
        appliance.start()
        for user in (ALICE, BOB, CAROL, DAVE):
            addUser(appliance, user, PASSWORD)
        _state["appliance"] = appliance
    elif appliance.process.poll() is not None:
        raise ApplianceNotReady("the shared appliance has exited\n" + appliance.describe())
    return appliance


class DRMTests(ApplianceTestCase):
    """
    Protect, play, refuse, expire, revoke, delegate, Clear Key, TLS names and signatures.
    """

    def setUp(self):
        self.appliance = sharedAppliance()
        self.watchAppliance(self.appliance)
        self.directory = scratchDirectory("drm-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.audio = os.path.join(self.directory, "message.wav")
        writeFile(self.audio, os.urandom(16000), encoding="PCMU", rate=8000)

    def ctl(self, *arguments):
        return appliancectl(self.appliance, "drm", *arguments)

    def protect(self, *extra, to=BOB):
        output = os.path.join(self.directory, "message-%d.adrm" % (len(os.listdir(self.directory)),))
        status, text = self.ctl("protect", self.audio, "--from", ALICE, "--to", to, "-o", output, *extra)
        self.assertEqual(status, 0, text)
        keyId = re.search(r"key ([0-9a-f-]{36})", text).group(1)
        return output, keyId

    def play(self, package, user, *extra):
        output = os.path.join(self.directory, "played.wav")
        if os.path.exists(output):
            os.unlink(output)
        status, text = self.ctl("play", package, "--user", user, "--password", PASSWORD, "-o", output,
                                *extra)
        return status, text, output

    def assertPlays(self, package, user):
        status, text, output = self.play(package, user)
        self.assertEqual(status, 0, text)
        with open(output, "rb") as a, open(self.audio, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def assertRefused(self, package, user, reason):
        status, text, output = self.play(package, user)
        self.assertEqual(status, 1, text)
        self.assertIn(reason, text)
        self.assertFalse(os.path.exists(output))

    def client(self, user=BOB):
        client = LicenseClient("https://127.0.0.1:%d" % (self.appliance.tlsPort,),
                               self.appliance.certificatePath, user=user, password=PASSWORD)
        self.addCleanup(client.close)
        return client

    def test_roundTripAndStranger(self):
        """
        The recipient gets back the exact file; a stranger is refused with "no rights".
        """
        package, _ = self.protect("--plays", "3")
        with open(package, "rb") as f:
            self.assertEqual(f.read(4), b"ADRM")
        self.assertPlays(package, BOB)
        self.assertRefused(package, CAROL, "no rights")

    def test_wrongPassword(self):
        """
        A wrong password is answered 401 and nothing is written.
        """
        package, _ = self.protect()
        status, text = self.ctl("play", package, "--user", BOB, "--password", "nope", "-o",
                                os.path.join(self.directory, "x.wav"))
        self.assertEqual(status, 1, text)
        self.assertIn("401", text)

    def test_playsExhausted(self):
        """
        After N plays the next is refused as exhausted.
        """
        package, _ = self.protect("--plays", "2")
        self.assertPlays(package, BOB)
        self.assertPlays(package, BOB)
        self.assertRefused(package, BOB, "exhausted")

    def test_expiry(self):
        """
        After the expiry time, plays are refused as expired.
        """
        package, _ = self.protect("--plays", "5", "--expires-days", str(2.0 / 86400))
        self.assertPlays(package, BOB)
        time.sleep(2.2)
        self.assertRefused(package, BOB, "expired")

    def test_revocation(self):
        """
        Only the sender revokes; afterwards the recipient is refused as revoked.
        """
        package, keyId = self.protect("--plays", "5")
        status, text = self.ctl("revoke", keyId, "--user", BOB, "--password", PASSWORD)
        self.assertEqual(status, 1, text)
        self.assertIn("not the owner", text)
        status, text = self.ctl("revoke", package, "--user", ALICE, "--password", PASSWORD,
                                "--holder", BOB)
        self.assertEqual(status, 0, text)
        self.assertRefused(package, BOB, "revoked")

    def test_delegation(self):
        """
        Granting more than one holds is refused; less works and is played exactly; a delegate
        without forward right cannot delegate further.
        """
        package, keyId = self.protect("--plays", "3", "--forward", "1")
        grant = ("grant", package, "--user", BOB, "--password", PASSWORD, "--to", CAROL)
        status, text = self.ctl(*grant, "--plays", "4")
        self.assertEqual(status, 1, text)
        self.assertIn("403", text)
        self.assertIn("exceeds", text)
        status, text = self.ctl(*grant, "--plays", "1")
        self.assertEqual(status, 0, text)
        self.assertPlays(package, CAROL)
        self.assertRefused(package, CAROL, "exhausted")
        status, text = self.ctl("grant", keyId, "--user", CAROL, "--password", PASSWORD, "--to", DAVE,
                                "--plays", "0")
        self.assertEqual(status, 1, text)
        self.assertIn("forwarding not allowed", text)
        status, text = self.ctl("rights", keyId, "--user", ALICE, "--password", PASSWORD)
        self.assertEqual(status, 0, text)
        rights = json.loads(text)["rights"]
        self.assertEqual(rights[CAROL]["granted_by"], BOB)
        self.assertEqual(rights[BOB]["plays_left"], 3)

    def test_tamperedPackage(self):
        """
        A package with one altered media byte fails with a clear error and writes no audio.
        """
        package, _ = self.protect("--plays", "5")
        with open(package, "r+b") as f:
            f.seek(-100, 2)
            byte = f.read(1)
            f.seek(-100, 2)
            f.write(bytes([byte[0] ^ 1]))
        self.assertRefused(package, BOB, "fails authentication")

    def test_clearKey(self):
        """
        The Clear Key route answers a JWK set for the recipient, refuses a stranger with a
        reason, and carries CORS headers.
        """
        _, keyId = self.protect("--plays", "2")
        request = {"kids": [kidFor(keyId)], "type": "temporary"}
        status, body = self.client(BOB).request("POST", "/drm/clearkey", request)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["type"], "temporary")
        [jwk] = body["keys"]
        self.assertEqual((jwk["kty"], jwk["kid"]), ("oct", kidFor(keyId)))
        self.assertRegex(jwk["k"], r"^[A-Za-z0-9_-]{43}$")
        status, body = self.client(CAROL).request("POST", "/drm/clearkey", request)
        self.assertEqual((status, body["reason"]), (403, "no rights"))
        status, output = runProgram([
            "curl", "-sS", "-i", "--max-time", "10", "--cacert", self.appliance.certificatePath,
            "-X", "OPTIONS", "-H", "Origin: https://web.example.test",
            "https://127.0.0.1:%d/drm/clearkey" % (self.appliance.tlsPort,)])
        self.assertEqual(status, 0, output)
        self.assertIn("access-control-allow-origin: *", output.lower())

    def test_curlWrongName(self):
        """
        curl trusting the appliance certificate fails for a name the certificate lacks, and
        succeeds for 127.0.0.1; so does our client.
        """
        port = self.appliance.tlsPort
        base = ["curl", "-sS", "--max-time", "10", "--cacert", self.appliance.certificatePath]
        status, output = runProgram(base + ["--connect-to", "wrong.test:%d:127.0.0.1:%d" % (port, port),
                                            "https://wrong.test:%d/drm/public-key" % (port,)])
        self.assertNotEqual(status, 0, output)
        self.assertIn("certificate", output.lower())
        status, output = runProgram(base + ["https://127.0.0.1:%d/drm/public-key" % (port,)])
        self.assertEqual(status, 0, output)
        self.assertEqual(json.loads(output)["algorithm"], "Ed25519")
        client = LicenseClient("https://localhost:%d" % (port,), self.appliance.certificatePath)
        self.addCleanup(client.close)
        e = self.assertRaises(ClientError, client.publicKey)
        self.assertIn("certificate", str(e))

    def test_forgedSignatureRejected(self):
        """
        A license that does not verify with the key the player trusts is rejected, and no audio
        is written.
        """
        package, _ = self.protect("--plays", "3")
        other = os.path.join(self.directory, "other.pub")
        with open(other, "wb") as f:
            f.write(publicKeyPEM(Ed25519PrivateKey.generate().public_key()))
        status, text, output = self.play(package, BOB, "--public-key", other)
        self.assertEqual(status, 1, text)
        self.assertIn("signature does not verify", text)
        self.assertFalse(os.path.exists(output))

    def test_logsHoldNoSecrets(self):
        """
        After licenses are issued, the appliance log holds no traceback, no digest response,
        no service token and no content key.
        """
        _, keyId = self.protect("--plays", "2")
        status, body = self.client(BOB).request("POST", "/drm/clearkey",
                                                {"kids": [kidFor(keyId)], "type": "temporary"})
        self.assertEqual(status, 200, body)
        with open(os.path.join(self.appliance.dataDir, "drm", "service.token")) as f:
            token = f.read().strip()
        log = self.appliance.logText()
        self.assertNoTracebacks(self.appliance)
        for secret in (token, body["keys"][0]["k"], 'response="', PASSWORD):
            self.assertNotIn(secret, log)
