"""CRC-32C (Castagnoli, reflected 0x82F63B78) in Python, for hand-built OP_MSG frames with checksumPresent."""


def crc32c_py(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
