"""Runs INSIDE a guest, as root: raw-socket probes the hostile-network e2e tests send.

Copied into the guest by ``test_hostile_network.py`` (``python3 /tmp/vbxprobe.py ...``); it
imports only the standard library of the guest's Python. Two probes:

* ``syn SRC SPORT DST DPORT``: send one TCP SYN from a chosen source port (e.g. 22, which a
  normal socket cannot bind while sshd listens) and print ``synack``, ``rst`` or ``none`` —
  whether the far end answered, i.e. whether the SYN got through.
* ``frame IFACE KIND MARKER GATEWAY``: send one broadcast Ethernet frame carrying ``MARKER``
  with a forged part: ``legit`` (nothing forged, the control), ``mac`` (source MAC), ``ip``
  (source IPv4), ``arp`` (an ARP reply claiming the gateway's address) or ``ipv6`` (an IPv6
  packet). The test watches the host's bridge for the marker.
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        random.randint(0, 0xFFFF),
        0,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


def _udp(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    length = 8 + len(data)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    checksum = _checksum(pseudo + header + data) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, checksum) + data


def syn(src: str, sport: int, dst: str, dport: int, timeout: float = 4.0) -> str:
    seq = random.randint(0, 2**32 - 1)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    listen = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    send.sendto(_ipv4(src, dst, 6, tcp), (dst, 0))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([listen], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        packet = listen.recv(65535)
        ihl = (packet[0] & 0xF) * 4
        if socket.inet_ntoa(packet[12:16]) != dst:
            continue
        psrc, pdst, _, ack, _, flags = struct.unpack("!HHIIBB", packet[ihl : ihl + 14])
        if (psrc, pdst) != (dport, sport) or ack != (seq + 1) % 2**32:
            continue
        if flags & 0x12 == 0x12:
            return "synack"
        if flags & 0x04:
            return "rst"
    return "none"


def _mac(iface: str) -> bytes:
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def _own_ipv4(iface: str) -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.setsockopt(socket.SOL_SOCKET, 25, iface.encode())  # SO_BINDTODEVICE
    probe.connect(("10.213.0.1", 9))
    return str(probe.getsockname()[0])


def frame(iface: str, kind: str, marker: str, gateway: str) -> None:
    mac, ip = _mac(iface), _own_ipv4(iface)
    data = marker.encode()
    broadcast = b"\xff" * 6
    if kind == "legit":
        body = _ipv4(ip, gateway, 17, _udp(ip, gateway, 40000, 53, data))
        packet = broadcast + mac + b"\x08\x00" + body
    elif kind == "mac":
        forged = bytes.fromhex("525400dead01")
        body = _ipv4(ip, gateway, 17, _udp(ip, gateway, 40000, 53, data))
        packet = broadcast + forged + b"\x08\x00" + body
    elif kind == "ip":
        forged_ip = ".".join([*gateway.split(".")[:3], "77"])
        body = _ipv4(forged_ip, gateway, 17, _udp(forged_ip, gateway, 40000, 53, data))
        packet = broadcast + mac + b"\x08\x00" + body
    elif kind == "arp":
        # "The gateway is at my MAC": an ARP reply with a sender address that is not ours.
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac + socket.inet_aton(gateway)
        arp += broadcast + socket.inet_aton(gateway)
        packet = broadcast + mac + b"\x08\x06" + arp + data
    elif kind == "ipv6":
        udp = struct.pack("!HHHH", 40000, 53, 8 + len(data), 0) + data
        src6 = b"\xfe\x80" + b"\0" * 6 + mac[:3] + b"\xff\xfe" + mac[3:]
        dst6 = b"\xff\x02" + b"\0" * 13 + b"\x01"
        header = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src6 + dst6
        packet = b"\x33\x33\x00\x00\x00\x01" + mac + b"\x86\xdd" + header + udp
    else:
        raise SystemExit(f"unknown frame kind {kind}")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    for _ in range(3):
        sock.send(packet)
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    if argv[:1] == ["syn"]:
        print(syn(argv[1], int(argv[2]), argv[3], int(argv[4])))
        return 0
    if argv[:1] == ["frame"]:
        frame(argv[1], argv[2], argv[3], argv[4])
        print("sent")
        return 0
    print(f"usage: {os.path.basename(sys.argv[0])} syn|frame ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
