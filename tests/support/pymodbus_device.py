"""A Modbus device for the integration tests, served by pymodbus (see requirements.txt).

Usage:
    pymodbus_device.py --config DEVICES.json --tcp PORT [--drift [UNIT:]ADDR:STEP ...]
    pymodbus_device.py --config DEVICES.json --serial PATH

DEVICES.json lists the units and their registers:

    {"units": [{"id": 1,
                "coils": [[0, [true, false]]],
                "discrete_inputs": [[0, [true]]],
                "holding": [[2, [39892, 17262]]],
                "input": [[0, [1, 2, 3]]]}],
     "silent": [5]}

Each table entry is [first address, values]. Addresses that no entry covers reply with
exception 2 (illegal data address). Units listed in "silent" receive requests but never
reply, like a unit that is powered off.

The script prints "READY" once it serves, then reads one JSON command per line on stdin and
prints one JSON line for each:

    {"op": "get", "unit": 1, "table": "holding", "address": 10, "count": 2}
        -> {"ok": true, "values": [0, 7]}
    {"op": "set", "unit": 1, "table": "input", "address": 0, "values": [5]}
        -> {"ok": true}
    {"op": "silence", "unit": 5, "silent": false}
        -> {"ok": true}

--drift makes input register ADDR of UNIT (default 1) rise by STEP raw counts per second,
starting from its configured value, like a bearing that heats up. STEP may be a fraction or
negative; the register is updated five times a second, rounded to whole counts and wrapped
to 16 bits. The option may be repeated.

It exits when stdin closes.
"""

import argparse
import asyncio
import json
import sys

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

# Function codes that select each table in the datastore.
READ_CODES = {"coils": 1, "discrete_inputs": 2, "holding": 3, "input": 4}
# A table entry that no test reads, because pymodbus needs every table to have one.
FILLER_ADDRESS = 60000


def table_data(entries, bits):
    """Builds the SimData list of one table."""
    blocks = []
    for address, values in entries:
        if bits:
            blocks.append(SimData(address=address, values=[bool(v) for v in values], datatype=DataType.BITS))
        else:
            blocks.append(SimData(address=address, values=[int(v) for v in values], datatype=DataType.REGISTERS))
    if not blocks:
        if bits:
            blocks.append(SimData(address=FILLER_ADDRESS, values=[False] * 16, datatype=DataType.BITS))
        else:
            blocks.append(SimData(address=FILLER_ADDRESS, values=[0], datatype=DataType.REGISTERS))
    return blocks


def build_devices(config):
    devices = []
    for unit in config["units"]:
        simdata = (
            table_data(unit.get("coils", []), True),
            table_data(unit.get("discrete_inputs", []), True),
            table_data(unit.get("holding", []), False),
            table_data(unit.get("input", []), False),
        )
        devices.append(SimDevice(id=unit["id"], simdata=simdata))
    return devices


# Seconds between updates of a drifting register.
DRIFT_PERIOD = 0.2


def parse_drift(text):
    """Parses [UNIT:]ADDR:STEP into (unit, address, step per second)."""
    parts = text.split(":")
    if len(parts) == 2:
        parts.insert(0, "1")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"invalid drift {text!r}; expected [UNIT:]ADDR:STEP such as 8:5")
    try:
        return int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"invalid drift {text!r}: {error}") from error


async def drift(device, unit, address, step):
    """Raises an input register by `step` counts per second from its value at start."""
    context = device.server.context
    code = READ_CODES["input"]
    start = await context.async_getValues(unit, code, address, 1)
    if not isinstance(start, list):
        print(f"drift: cannot read unit {unit} input register {address}: {start}", file=sys.stderr, flush=True)
        return
    base = int(start[0])
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        await asyncio.sleep(DRIFT_PERIOD)
        value = round(base + step * (loop.time() - began)) & 0xFFFF
        await context.async_setValues(unit, code, address, [value])


class Device:
    def __init__(self, config, serial):
        self.silent = set(config.get("silent", []))
        self.serial = serial
        self.server = None

    def trace_packet(self, sending, data):
        """Drops replies of silent units; the unit id is byte 0 on RTU and byte 6 on TCP."""
        if not sending or not data:
            return data
        unit_index = 0 if self.serial else 6
        if len(data) > unit_index and data[unit_index] in self.silent:
            return b""
        return data

    async def handle(self, command):
        op = command["op"]
        if op == "silence":
            if command["silent"]:
                self.silent.add(command["unit"])
            else:
                self.silent.discard(command["unit"])
            return {"ok": True}
        code = READ_CODES[command["table"]]
        context = self.server.context
        if op == "get":
            values = await context.async_getValues(command["unit"], code, command["address"], command["count"])
            if not isinstance(values, list):
                return {"ok": False, "error": str(values)}
            return {"ok": True, "values": [int(v) for v in values]}
        if op == "set":
            values = command["values"]
            if command["table"] in ("coils", "discrete_inputs"):
                values = [bool(v) for v in values]
            error = await context.async_setValues(command["unit"], code, command["address"], values)
            if error:
                return {"ok": False, "error": str(error)}
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op}"}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int)
    where.add_argument("--serial")
    parser.add_argument("--drift", type=parse_drift, action="append", default=[])
    args = parser.parse_args()

    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    device = Device(config, serial=args.serial is not None)
    devices = build_devices(config)
    if args.serial:
        device.server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=args.serial,
            baudrate=19200,
            trace_packet=device.trace_packet,
        )
    else:
        device.server = ModbusTcpServer(
            devices,
            address=("127.0.0.1", args.tcp),
            trace_packet=device.trace_packet,
        )
    await device.server.serve_forever(background=True)
    drifts = [asyncio.create_task(drift(device, *spec)) for spec in args.drift]
    print("READY", flush=True)

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            reply = await device.handle(json.loads(line))
        except Exception as error:  # pylint: disable=broad-except
            reply = {"ok": False, "error": repr(error)}
        print(json.dumps(reply), flush=True)
    for task in drifts:
        task.cancel()
    await device.server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
