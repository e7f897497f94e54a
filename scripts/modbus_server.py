#!/usr/bin/env python3
"""A pymodbus server with two units of known values, for scripts/interop-modbus.sh.

    modbus_server.py tcp PORT
    modbus_server.py rtu DEVICE [BAUD]

Unit 1 is an XY-MD02 (input registers 1 and 2: 21.5 degC, 45.5 %RH as i16 x 0.1).
Unit 2 is a Vaisala-style transmitter (holding registers 0-1 humidity 55.25 %RH,
2-3 temperature 4.5 degC, float32 with the LOW word first).

pymodbus quirk: its data blocks are addressed one above the wire address (the
old "register 1 = address 0" convention, a.k.a. zero_mode=False). A value meant
for wire address A is therefore stored at block index A + 1; see OFFSET.
"""

import asyncio
import struct
import sys

import pymodbus
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext

try:  # pymodbus >= 3.10
    from pymodbus.datastore import ModbusDeviceContext as DeviceContext
except ImportError:  # older 3.x
    from pymodbus.datastore import ModbusSlaveContext as DeviceContext

from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer

# Block index = wire address + OFFSET (see the module doc).
OFFSET = 1


def f32_little_word_first(value):
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi]


def block(values_by_wire_address):
    """A block holding wire addresses 0..N with the given values (others 0)."""
    size = max(values_by_wire_address) + 1
    words = [0] * size
    for address, value in values_by_wire_address.items():
        words[address] = value
    return ModbusSequentialDataBlock(OFFSET, words)


def context():
    xy = DeviceContext(ir=block({1: 215, 2: 455}), hr=block({0: 0}))
    humidity = f32_little_word_first(55.25)
    temperature = f32_little_word_first(4.5)
    vaisala = DeviceContext(
        hr=block({0: humidity[0], 1: humidity[1], 2: temperature[0], 3: temperature[1]}),
        ir=block({0: 0}),
    )
    units = {1: xy, 2: vaisala}
    try:
        return ModbusServerContext(devices=units, single=False)
    except TypeError:  # older 3.x
        return ModbusServerContext(slaves=units, single=False)


async def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("tcp", "rtu"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print(f"pymodbus {pymodbus.__version__} serving {sys.argv[1]} {sys.argv[2]}", file=sys.stderr, flush=True)
    if sys.argv[1] == "tcp":
        await StartAsyncTcpServer(context=context(), address=("127.0.0.1", int(sys.argv[2])))
    else:
        baud = int(sys.argv[3]) if len(sys.argv) > 3 else 9600
        await StartAsyncSerialServer(context=context(), port=sys.argv[2], baudrate=baud)


if __name__ == "__main__":
    asyncio.run(main())
