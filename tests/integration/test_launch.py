"""
Launching the appliance with twistd: configuration errors, a busy port, the
wrong reactor, the embedded defaults, the generated TLS identity and a clean
stop.
"""

import os
import signal
import socket

from tests.integration.harness import (
    LOOPBACK,
    ApplianceProcess,
    ApplianceTestCase,
    UDPClient,
    optionsRequest,
    pickPorts,
    scratchDirectory,
    portIsFree,
    sipConfig,
    statusOf,
)

#: How long a twistd that must refuse to start may take to do so.
_REFUSAL_TIMEOUT = 20.0


class LaunchTests(ApplianceTestCase):
    """
    twistd command lines that must start, and ones that must not.
    """

    def refuse(self, **kwargs):
        """
        Launch an appliance that must exit on its own; return its exit status
        and output.
        """
        appliance = ApplianceProcess(**kwargs)
        self.watchAppliance(appliance)
        self.addCleanup(appliance.stop)
        appliance.launch()
        status = appliance.wait(_REFUSAL_TIMEOUT)
        self.assertIsNotNone(status, "the appliance did not exit on its own")
        return status, appliance.logText()

    def assertOptionsAnswered(self, port):
        """
        An OPTIONS over UDP to 127.0.0.1:C{port} gets 200.
        """
        client = UDPClient()
        try:
            response = client.exchange(optionsRequest("UDP", client.port, port), port)
        finally:
            client.close()
        self.assertIsNotNone(response, "no answer to OPTIONS on port %d" % (port,))
        self.assertEqual(statusOf(response)[0], 200, response)

    def assertStopsCleanly(self, appliance):
        """
        SIGTERM stops C{appliance}: twistd shuts the services down ("Server
        Shut Down.") and then ends itself with the signal that stopped it
        (twistd's own convention, C{twisted.application.app._exitWithSignal}),
        so the status is -SIGTERM, or 0.
        """
        status = appliance.stop()
        self.assertIn(status, (0, -signal.SIGTERM), "exit status %s" % (status,))
        self.assertIn("Server Shut Down.", appliance.logText())

    def test_configErrorsReportedTogether(self):
        """
        A config with an unknown key and a bad value makes twistd exit
        non-zero with one report naming the file and both problems, without
        a traceback.
        """

        def config(appliance):
            return sipConfig(appliance.dataDir, appliance.sipPort, appliance.tlsPort).replace(
                "log_level = debug", "log_level = chatty"
            ) + "frobnicate = yes\n"

        status, output = self.refuse(configText=config)
        self.assertNotEqual(status, 0, output)
        self.assertIn("appliance.conf", output)
        self.assertIn("frobnicate", output)
        self.assertIn("log_level", output)
        self.assertIn("chatty", output)
        self.assertIn("[sip]", output)
        self.assertIn("[appliance]", output)
        self.assertNotIn("Traceback", output)

    def test_portInUse(self):
        """
        A SIP port that another program holds makes twistd exit non-zero with
        a message naming the setting, the port and saying it is in use.
        """
        (port,) = pickPorts(1)
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(holder.close)
        holder.bind((LOOPBACK, port))

        def config(appliance):
            return sipConfig(appliance.dataDir, port, appliance.tlsPort)

        status, output = self.refuse(configText=config)
        self.assertNotEqual(status, 0, output)
        self.assertIn("[sip] listen", output)
        self.assertIn(str(port), output)
        self.assertIn("in use", output.lower())
        self.assertNotIn("Traceback", output)

    def test_wrongReactor(self):
        """
        twistd with a reactor other than asyncio exits non-zero and explains
        that the appliance needs the asyncio reactor.
        """
        status, output = self.refuse(
            arguments=["--reactor=select", "-n", "appliance", "--config", "{config}"]
        )
        self.assertNotEqual(status, 0, output)
        self.assertIn("asyncio", output)
        self.assertNotIn("Traceback", output)

    def test_defaultsWithoutConfig(self):
        """
        With no --config, in an empty working directory, the appliance starts
        on its embedded defaults: state in ./var (a SQLite database and a
        generated certificate and key) and OPTIONS answered on UDP port 5060.
        """
        busy = [
            "%s/%d" % (kind, port)
            for kind, port, udp, tcp in (("udp", 5060, True, False),
                                          ("tcp", 5060, False, True),
                                          ("tcp", 5061, False, True))
            if not portIsFree(port, host="0.0.0.0", udp=udp, tcp=tcp)
        ]
        if busy:
            self.fail(
                "the defaults test needs ports 5060 (UDP, TCP) and 5061 (TCP) free on "
                "all interfaces, but %s is taken on this machine" % (", ".join(busy),)
            )
        cwd = scratchDirectory("defaults-cwd-")
        appliance = ApplianceProcess(
            configText=False,
            arguments=["--reactor=asyncio", "-n", "appliance"],
            cwd=cwd,
            ready=([5060], [5060, 5061]),
            sipPort=5060,
            tlsPort=5061,
        )
        self.watchAppliance(appliance)
        self.addCleanup(appliance.stop)
        appliance.start(attempts=1)
        var = os.path.join(cwd, "var")
        self.assertTrue(os.path.isdir(var), "no ./var in %s" % (os.listdir(cwd),))
        databases = [name for name in os.listdir(var) if _isSQLite(os.path.join(var, name))]
        self.assertTrue(databases, "no SQLite database in ./var: %s" % (os.listdir(var),))
        self.assertTrue(os.path.isfile(os.path.join(var, "tls", "cert.pem")))
        self.assertTrue(os.path.isfile(os.path.join(var, "tls", "key.pem")))
        self.assertOptionsAnswered(5060)
        self.assertStopsCleanly(appliance)

    def test_generatedCertificate(self):
        """
        The generated certificate names the SIP domain and 127.0.0.1, its key
        is private to the owner, and a restart reuses both.
        """
        from cryptography import x509

        appliance = self.startAppliance()
        with open(appliance.certificatePath, "rb") as f:
            first = f.read()
        certificate = x509.load_pem_x509_certificate(first)
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        self.assertIn("example.test", names.get_values_for_type(x509.DNSName))
        self.assertIn(
            LOOPBACK, [str(address) for address in names.get_values_for_type(x509.IPAddress)]
        )
        keyPath = os.path.join(appliance.dataDir, "tls", "key.pem")
        self.assertEqual(os.stat(keyPath).st_mode & 0o077, 0, "key.pem is readable by others")
        self.assertStopsCleanly(appliance)
        appliance.start()
        with open(appliance.certificatePath, "rb") as f:
            self.assertEqual(f.read(), first, "the certificate was regenerated on restart")

    def test_dataDirOption(self):
        """
        --data-dir overrides [appliance] data_dir: the state goes there.
        """
        appliance = ApplianceProcess(
            arguments=[
                "--reactor=asyncio", "-n", "appliance", "--config", "{config}",
                "--data-dir", "elsewhere",
            ]
        )
        self.watchAppliance(appliance)
        self.addCleanup(appliance.stop)
        appliance.start()
        elsewhere = os.path.join(appliance.cwd, "elsewhere")
        self.assertTrue(os.path.isfile(os.path.join(elsewhere, "tls", "cert.pem")))
        self.assertFalse(os.path.exists(appliance.dataDir))
        self.assertOptionsAnswered(appliance.sipPort)

    def test_sigtermStopsCleanly(self):
        """
        SIGTERM stops a running appliance within seconds, through twistd's
        orderly shutdown, with no traceback in its log.
        """
        appliance = self.startAppliance()
        self.assertOptionsAnswered(appliance.sipPort)
        self.assertStopsCleanly(appliance)
        self.assertNoTracebacks(appliance)


def _isSQLite(path):
    """
    Whether C{path} is a SQLite 3 database file.
    """
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
