from setuptools import find_packages, setup

with open("requirements.txt") as f:
    requirements = [
        line.strip() for line in f if line.strip() and not line.startswith("#")
    ]

setup(
    name="appliance",
    version="0.1.0",
    description="All-in-one Internet telephony appliance on Twisted",
    python_requires=">=3.11",
    # Every package under appliance/, so a new one cannot be left out of
    # an installed appliance; no __init__.py in twisted/ (the plugin).
    packages=find_packages(include=["appliance", "appliance.*"]) + ["twisted.plugins"],
    package_data={
        "twisted": ["plugins/appliance_plugin.py"],
        # APPLIANCE-MIB (docs/snmp.md).
        "appliance.snmp": ["mibs/APPLIANCE-MIB.txt"],
    },
    # The system bus policy; the Debian package installs it to
    # /usr/share/dbus-1/system.d/ (docs/dbus.md).
    data_files=[
        ("share/dbus-1/system.d", ["etc/dbus/org.appliance.Appliance1.conf"]),
        # The MIB for net-snmp tools (Debian: /usr/share/snmp/mibs).
        ("share/snmp/mibs", ["appliance/snmp/mibs/APPLIANCE-MIB.txt"]),
    ],
    install_requires=requirements,
    entry_points={"console_scripts": ["appliancectl = appliance.cli:run"]},
)
