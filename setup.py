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
        "appliance.media",
        "appliance.rtsp",
        "appliance.sip",
        "appliance.storage",
        "twisted.plugins",
    ],
    package_data={"twisted": ["plugins/appliance_plugin.py"]},
    install_requires=requirements,
    entry_points={"console_scripts": ["appliancectl = appliance.cli:run"]},
)
