"""
Tests for L{appliance.tls}.
"""

import ipaddress
import os
import stat

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from appliance.tls import TLSError, ensureCertificate, serverContext


class CertificateTests(SynchronousTestCase):
    """
    The generated self-signed identity.
    """

    def setUp(self):
        directory = self.mktemp()
        self.cert = os.path.join(directory, "tls", "cert.pem")
        self.key = os.path.join(directory, "tls", "key.pem")

    def test_generatedOnce(self):
        """
        The certificate is made on the first call and kept afterwards.
        """
        self.assertTrue(ensureCertificate(self.cert, self.key, ["example.test"]))
        with open(self.cert, "rb") as f:
            first = f.read()
        self.assertFalse(ensureCertificate(self.cert, self.key, ["example.test"]))
        with open(self.cert, "rb") as f:
            self.assertEqual(f.read(), first)

    def test_namesAndKeyMode(self):
        """
        The certificate names the domains and loopback addresses, and the key
        is readable by its owner only.
        """
        ensureCertificate(self.cert, self.key, ["example.test", "other.test"])
        with open(self.cert, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["example.test", "other.test"])
        self.assertEqual(
            names.get_values_for_type(x509.IPAddress),
            [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")],
        )
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)

    def test_serverContext(self):
        """
        The generated pair loads into server context options.
        """
        ensureCertificate(self.cert, self.key, ["example.test"])
        self.assertIsNotNone(serverContext(self.cert, self.key).getContext())

    def test_unusableFiles(self):
        """
        Missing or mismatched files give a L{TLSError} naming the problem.
        """
        self.assertRaises(TLSError, serverContext, self.cert, self.key)
        ensureCertificate(self.cert, self.key, ["example.test"])
        other = os.path.join(os.path.dirname(self.cert), "other")
        ensureCertificate(other + ".pem", other + ".key", ["x.test"])
        self.assertRaises(TLSError, serverContext, self.cert, other + ".key")
