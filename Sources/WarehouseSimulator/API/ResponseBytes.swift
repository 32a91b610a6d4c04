import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing response bodies into NIO's `ByteBuffer`: JSON strings, CSV fields, decimal integers.
extension ByteBuffer {
    /// Appends a JSON string (quoted and escaped) from UTF-8 bytes.
    mutating func writeJSONString(_ value: UnsafeRawBufferPointer) {
        reserveCapacity(minimumWritableBytes: value.count + 2)
        writeInteger(UInt8(ascii: "\""))
        var start = 0
        let n = value.count
        var i = 0
        while i < n {
            let b = value[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C {
                i += 1
                continue
            }
            if start < i { writeBytes(UnsafeRawBufferPointer(rebasing: value[start..<i])) }
            switch b {
            case 0x22: writeStaticString("\\\"")
            case 0x5C: writeStaticString("\\\\")
            case 0x0A: writeStaticString("\\n")
            case 0x0D: writeStaticString("\\r")
            case 0x09: writeStaticString("\\t")
            case 0x08: writeStaticString("\\b")
            case 0x0C: writeStaticString("\\f")
            default:
                writeStaticString("\\u00")
                writeInteger(Self.hexDigits[Int(b >> 4)])
                writeInteger(Self.hexDigits[Int(b & 0xF)])
            }
            i += 1
            start = i
        }
        if start < n { writeBytes(UnsafeRawBufferPointer(rebasing: value[start..<n])) }
        writeInteger(UInt8(ascii: "\""))
    }

    /// Appends `value` as a JSON string.
    mutating func writeJSONString(_ value: String) {
        var s = value
        s.withUTF8 { writeJSONString(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a CSV field per RFC 4180 (quoted when it holds a comma, quote, CR or LF).
    mutating func writeCSVField(_ value: String) {
        var s = value
        s.withUTF8 { u in
            let raw = UnsafeRawBufferPointer(u)
            var needsQuote = false
            for b in raw where b == 0x2C || b == 0x22 || b == 0x0A || b == 0x0D {
                needsQuote = true
                break
            }
            if !needsQuote {
                writeBytes(raw)
                return
            }
            writeInteger(UInt8(ascii: "\""))
            for b in raw {
                if b == 0x22 { writeInteger(UInt8(ascii: "\"")) }
                writeInteger(b)
            }
            writeInteger(UInt8(ascii: "\""))
        }
    }

    /// Appends an integer in decimal.
    mutating func writeDecimal(_ value: Int) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: 20) { raw in
            var w = RowWriter(raw.baseAddress!)
            w.decimal(value)
            return w.count
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}

/// Writes one rendered row into memory the caller reserved (`ByteBuffer.writeWithUnsafeMutableBytes`), with no
/// capacity check per write: the hot path of rendering synthetic rows, which reserve their upper bound per row.
struct RowWriter {
    let base: UnsafeMutableRawPointer
    private(set) var count = 0

    init(_ base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func bytes(_ p: UnsafeRawPointer, _ n: Int) {
        memcpy(base + count, p, n)
        count += n
    }

    @inline(__always)
    mutating func bytes(_ s: StaticString) {
        bytes(UnsafeRawPointer(s.utf8Start), s.utf8CodeUnitCount)
    }

    /// An integer in decimal (at most 20 bytes).
    @inline(__always)
    mutating func decimal(_ value: Int) {
        var v = value.magnitude
        if value < 0 { byte(UInt8(ascii: "-")) }
        var digits = 0
        var t = v
        repeat {
            digits += 1
            t /= 10
        } while t > 0
        var k = count + digits - 1
        repeat {
            base.storeBytes(of: UInt8(48 + v % 10), toByteOffset: k, as: UInt8.self)
            v /= 10
            k -= 1
        } while v > 0
        count += digits
    }

    /// `value` zero-padded to `width` digits (value must be non-negative).
    @inline(__always)
    mutating func padded(_ value: Int, width: Int) {
        var v = value
        var k = width - 1
        while k >= 0 {
            base.storeBytes(of: UInt8(48 + v % 10), toByteOffset: count + k, as: UInt8.self)
            v /= 10
            k -= 1
        }
        count += width
    }
}
