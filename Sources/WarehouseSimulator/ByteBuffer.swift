import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable byte buffer for rendering response bodies: appends are a capacity check and a `memcpy`.
///
/// Not thread-safe; each buffer belongs to the connection thread that renders and writes it.
final class ByteBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count: Int = 0
    private(set) var capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private func grow(_ needed: Int) {
        var newCap = capacity * 2
        while newCap < needed { newCap *= 2 }
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: newCap)
        p.update(from: base, count: count)
        base.deallocate()
        base = p
        capacity = newCap
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        if count == capacity { grow(count + 1) }
        base[count] = byte
        count += 1
    }

    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0 else { return }
        reserve(n)
        memcpy(base + count, bytes.baseAddress!, n)
        count += n
    }

    /// Appends without a capacity check; the caller has reserved room.
    @inline(__always)
    func appendUnchecked(_ p: UnsafeRawPointer, _ n: Int) {
        memcpy(base + count, p, n)
        count += n
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    func append(_ string: StaticString) {
        append(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    func append(string: String) {
        var s = string
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a non-negative or negative integer in decimal.
    @inline(__always)
    func append(int value: Int) {
        reserve(20)
        var v = value
        if v < 0 {
            base[count] = UInt8(ascii: "-")
            count += 1
            v = -v
        }
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat {
                t[n] = UInt8(48 + v % 10)
                v /= 10
                n += 1
            } while v > 0
            for k in 0..<n { base[count + k] = t[n - 1 - k] }
        }
        count += n
    }

    /// Appends `value` zero-padded to `width` digits (value must be non-negative).
    @inline(__always)
    func append(padded value: Int, width: Int) {
        reserve(width)
        var v = value
        var k = width - 1
        while k >= 0 {
            base[count + k] = UInt8(48 + v % 10)
            v /= 10
            k -= 1
        }
        count += width
    }

    /// Appends a JSON string (quoted and escaped) from UTF-8 bytes.
    func appendJSONString(_ value: UnsafeRawBufferPointer) {
        reserve(value.count + 2)
        append(UInt8(ascii: "\""))
        var start = 0
        let n = value.count
        var i = 0
        while i < n {
            let b = value[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C {
                i += 1
                continue
            }
            if start < i { append(UnsafeRawBufferPointer(rebasing: value[start..<i])) }
            switch b {
            case 0x22: append("\\\"")
            case 0x5C: append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0x08: append("\\b")
            case 0x0C: append("\\f")
            default:
                append("\\u00")
                append(Self.hex[Int(b >> 4)])
                append(Self.hex[Int(b & 0xF)])
            }
            i += 1
            start = i
        }
        if start < n { append(UnsafeRawBufferPointer(rebasing: value[start..<n])) }
        append(UInt8(ascii: "\""))
    }

    func appendJSONString(_ value: String) {
        var s = value
        s.withUTF8 { appendJSONString(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a CSV field per RFC 4180 (quoted when it holds a comma, quote, CR or LF).
    func appendCSVField(_ value: String) {
        var s = value
        s.withUTF8 { u in
            let raw = UnsafeRawBufferPointer(u)
            var needsQuote = false
            for b in raw where b == 0x2C || b == 0x22 || b == 0x0A || b == 0x0D {
                needsQuote = true
                break
            }
            if !needsQuote {
                append(raw)
                return
            }
            append(UInt8(ascii: "\""))
            for b in raw {
                if b == 0x22 { append(UInt8(ascii: "\"")) }
                append(b)
            }
            append(UInt8(ascii: "\""))
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    func removeAll() { count = 0 }
}
