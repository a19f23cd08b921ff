import COpenSSL

/// SHA-256 and HMAC-SHA256 from OpenSSL's libcrypto: the only primitives
/// SigV4 needs. One-shot functions, so there is no context to free.
public enum Crypto {
    /// SHA-256 of `data` (32 bytes). The corresponding C function is `SHA256`.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { md in
                _ = SHA256(input.baseAddress, input.count, md.baseAddress)
            }
        }
        return out
    }

    /// HMAC-SHA256 of `data` under `key` (32 bytes). The corresponding C
    /// function is `HMAC` with `EVP_sha256()`.
    public static func hmacSHA256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { md in
                    _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count,
                             md.baseAddress, &length)
                }
            }
        }
        return out
    }

    /// Lower-case hexadecimal, as SigV4 writes hashes and signatures.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
