"""
The SNMP agent (pysnmp 7 on the asyncio reactor) and APPLIANCE-MIB.

C{MIB_DIRECTORY} holds the SMI text of the MIB for operators' tools.
"""

import os

MIB_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mibs")
