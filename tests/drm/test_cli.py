"""
Tests for L{appliance.drm.cli} through appliancectl's main, without a server.
"""

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli import main
from appliance.drm.license import publicKeyPEM
from appliance.tls import makeSelfSigned
from appliance.drm.package import newHeader, newKey, protect


class DRMCommandTests(SynchronousTestCase):
    """
    Errors the drm commands report before or without reaching the server.
    """

    def run_(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        status = main(["--data-dir", self.directory] + list(argv), stdin=io.StringIO(""),
                      stdout=out, stderr=err)
        return status, out.getvalue() + err.getvalue()

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.audio = os.path.join(self.directory, "in.wav")
        with open(self.audio, "wb") as f:
            f.write(b"audio")
        self.cert = os.path.join(self.directory, "cert.pem")
        with open(self.cert, "wb") as f:
            f.write(makeSelfSigned(["example.test"])[0])

    def test_protectWithoutToken(self):
        """
        protect before the appliance ever ran the drm service says so, and writes nothing.
        """
        output = os.path.join(self.directory, "out.adrm")
        status, text = self.run_("drm", "protect", self.audio, "--from", "a@example.test", "--to",
                                 "b@example.test", "-o", output)
        self.assertEqual(status, 1)
        self.assertIn("service token", text)
        self.assertFalse(os.path.exists(output))
        self.assertEqual([name for name in os.listdir(self.directory) if name.startswith(".drm-")], [])

    def test_playNotAPackage(self):
        """
        play refuses a file that is not a package, naming the problem.
        """
        status, text = self.run_("drm", "play", self.audio, "--user", "b@example.test", "--password",
                                 "x", "-o", os.path.join(self.directory, "out.wav"))
        self.assertEqual(status, 1)
        self.assertIn("not a protected message", text)

    def test_playUnreachableServer(self):
        """
        play reports a server it cannot reach, and writes nothing.
        """
        package = os.path.join(self.directory, "m.adrm")
        with open(package, "wb") as f:
            f.write(protect(b"audio", newKey(), newHeader("https://127.0.0.1:1/drm/license")))
        public = os.path.join(self.directory, "signing.pub")
        with open(public, "wb") as f:
            f.write(publicKeyPEM(Ed25519PrivateKey.generate().public_key()))
        output = os.path.join(self.directory, "out.wav")
        status, text = self.run_("drm", "play", package, "--user", "b@example.test", "--password", "x",
                                 "--ca", self.cert, "--public-key", public, "-o", output)
        self.assertEqual(status, 1, text)
        self.assertIn("cannot connect", text)
        self.assertFalse(os.path.exists(output))

    def test_badPublicKey(self):
        """
        A --public-key that is not an Ed25519 public key is refused with a message.
        """
        package = os.path.join(self.directory, "m.adrm")
        with open(package, "wb") as f:
            f.write(protect(b"audio", newKey(), newHeader("https://127.0.0.1:1/drm/license")))
        status, text = self.run_("drm", "play", package, "--user", "b@example.test", "--password", "x",
                                 "--ca", self.cert, "--public-key", self.audio, "-o", "x.wav")
        self.assertEqual(status, 1, text)
        self.assertIn("not a PEM public key", text)
