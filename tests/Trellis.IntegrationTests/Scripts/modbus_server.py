"""A Modbus TCP device for the gateway's tests: pymodbus (Debian's python3-pymodbus) serving unit 1
on 127.0.0.1:PORT with known values, addresses as on the wire (zero_mode).

usage: /usr/bin/python3 modbus_server.py PORT

holding registers: 0-1 float32 21.5 (ABCD), 2 int16 -7, 3-4 uint32 100000 as CDAB, 10-11 a
writable float32 setpoint (0.0); input registers: 0 uint16 1234; coils: 0 on; discrete inputs: 0 on.
Registers and bits past 100 do not exist (a read there is answered with exception 2).
"""
import logging
import struct
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartTcpServer

logging.basicConfig(level=logging.ERROR)
port = int(sys.argv[1])
temperature = list(struct.unpack(">HH", struct.pack(">f", 21.5)))
high, low = struct.unpack(">HH", struct.pack(">I", 100000))
holding = [0] * 100
holding[0:2] = temperature
holding[2] = (-7) & 0xFFFF
holding[3:5] = [low, high]
store = ModbusSlaveContext(
    co=ModbusSequentialDataBlock(0, [True] + [False] * 99),
    di=ModbusSequentialDataBlock(0, [True] + [False] * 99),
    hr=ModbusSequentialDataBlock(0, holding),
    ir=ModbusSequentialDataBlock(0, [1234] + [0] * 99),
    zero_mode=True,
)
print("listening", flush=True)
StartTcpServer(context=ModbusServerContext(slaves=store, single=True), address=("127.0.0.1", port))
