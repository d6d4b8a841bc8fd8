from setuptools import setup

with open("requirements.txt") as f:
    requirements = [
        line.strip() for line in f if line.strip() and not line.startswith("#")
    ]

setup(
    name="appliance",
    version="0.1.0",
    description="All-in-one Internet telephony appliance on Twisted",
    python_requires=">=3.11",
    packages=[
        "appliance",
        "appliance.dbus",
        "appliance.drm",
        "appliance.media",
        "appliance.rtsp",
        "appliance.sip",
        "appliance.snmp",
        "appliance.storage",
        "twisted.plugins",
    ],
    package_data={
        "twisted": ["plugins/appliance_plugin.py"],
        # APPLIANCE-MIB (docs/snmp.md).
        "appliance.snmp": ["mibs/APPLIANCE-MIB.txt"],
    },
    # The system bus policy; the Debian package installs it to
    # /etc/dbus-1/system.d/ (docs/dbus.md).
    data_files=[
        ("share/dbus-1/system.d", ["etc/dbus/org.appliance.Appliance1.conf"]),
        # The MIB for net-snmp tools (Debian: /usr/share/snmp/mibs).
        ("share/snmp/mibs", ["appliance/snmp/mibs/APPLIANCE-MIB.txt"]),
    ],
    install_requires=requirements,
    entry_points={"console_scripts": ["appliancectl = appliance.cli:run"]},
)
