/// Appends compact JSON to a byte buffer without Foundation.
///
/// Used for panel records, outbox lines and NDJSON output, where `JSONEncoder` would dominate the cost.
/// Strings are escaped per RFC 8259: `"` `\` and control characters; everything else (including non-ASCII
/// UTF-8) is copied as is.
public struct JSONWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8]
    private var needsComma: [Bool] = []

    public init(reservingCapacity capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Removes everything written, keeping the allocation.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma.removeAll(keepingCapacity: true)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }

    public mutating func endObject() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }

    public mutating func endArray() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    /// Writes an object key; the next value written belongs to it.
    public mutating func key(_ name: String) {
        separate()
        Self.appendEscaped(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        if !needsComma.isEmpty { needsComma[needsComma.count - 1] = false }
    }

    public mutating func string(_ value: String?) {
        separate()
        if let value { Self.appendEscaped(value, to: &bytes) } else { appendNull() }
    }

    /// Writes a string value from raw UTF-8 bytes.
    public mutating func string(utf8 value: UnsafeRawBufferPointer) {
        separate()
        Self.appendEscaped(utf8: value, to: &bytes)
    }

    public mutating func int(_ value: Int64) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func uint(_ value: UInt64) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func null() {
        separate()
        appendNull()
    }

    /// Writes already-valid JSON text as a value (no checking).
    public mutating func raw(_ json: some Collection<UInt8>) {
        separate()
        bytes.append(contentsOf: json)
    }

    private mutating func appendNull() {
        bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
    }

    private mutating func separate() {
        guard !needsComma.isEmpty else { return }
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `value` as a quoted, escaped JSON string.
    public static func appendEscaped(_ value: String, to out: inout [UInt8]) {
        var value = value
        value.withUTF8 { appendEscaped(utf8: UnsafeRawBufferPointer($0), to: &out) }
    }

    /// The most bytes ``writeEscaped(utf8:to:)`` writes for a value of `count` bytes (quotes, and `\u00XX` for
    /// every byte in the worst case).
    @inlinable
    public static func escapedBound(_ count: Int) -> Int { 2 + 6 * count }

    /// Writes UTF-8 bytes as a quoted, escaped JSON string at `dst`, which must have room for
    /// ``escapedBound(_:)`` bytes; returns the number of bytes written. The same bytes as
    /// ``appendEscaped(utf8:to:)``, for hot loops that write a whole record into one buffer sized up front
    /// (no per-call capacity or uniqueness checks).
    public static func writeEscaped(utf8 value: UnsafeRawBufferPointer, to dst: UnsafeMutableRawPointer) -> Int {
        var o = 0
        dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: o, as: UInt8.self)
        o += 1
        let n = value.count
        guard n > 0, let src = value.baseAddress else {
            dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: o, as: UInt8.self)
            return o + 1
        }
        var start = 0
        var i = 0
        while i < n {
            // Eight bytes at a time while none of them needs escaping (most values: names, emails, dates).
            if i &+ 8 <= n, !wordNeedsEscape(src.loadUnaligned(fromByteOffset: i, as: UInt64.self)) {
                i &+= 8
                continue
            }
            let b = src.load(fromByteOffset: i, as: UInt8.self)
            if b >= 0x20 && b != 0x22 && b != 0x5C {
                i += 1
                continue
            }
            if start < i {
                (dst + o).copyMemory(from: src + start, byteCount: i - start)
                o += i - start
            }
            var esc: (UInt8, UInt8) = (0x5C, 0)
            switch b {
            case 0x22: esc.1 = 0x22
            case 0x5C: esc.1 = 0x5C
            case 0x0A: esc.1 = 0x6E
            case 0x0D: esc.1 = 0x72
            case 0x09: esc.1 = 0x74
            case 0x08: esc.1 = 0x62
            case 0x0C: esc.1 = 0x66
            default: esc.1 = 0x75
            }
            dst.storeBytes(of: esc.0, toByteOffset: o, as: UInt8.self)
            dst.storeBytes(of: esc.1, toByteOffset: o + 1, as: UInt8.self)
            o += 2
            if esc.1 == 0x75 {
                dst.storeBytes(of: 0x30, toByteOffset: o, as: UInt8.self)
                dst.storeBytes(of: 0x30, toByteOffset: o + 1, as: UInt8.self)
                dst.storeBytes(of: hexDigit(b >> 4), toByteOffset: o + 2, as: UInt8.self)
                dst.storeBytes(of: hexDigit(b & 0xF), toByteOffset: o + 3, as: UInt8.self)
                o += 4
            }
            i += 1
            start = i
        }
        if start < n {
            (dst + o).copyMemory(from: src + start, byteCount: n - start)
            o += n - start
        }
        dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: o, as: UInt8.self)
        return o + 1
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }

    /// Whether any of the eight bytes of `w` is below 0x20, a quote or a backslash (SWAR; may say true for a
    /// word that needs nothing, never false for one that does — the caller then looks byte by byte).
    @inline(__always)
    static func wordNeedsEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let control = (w &- ones &* 0x20) & ~w & highs
        let q = w ^ (ones &* 0x22)
        let quote = (q &- ones) & ~q & highs
        let bs = w ^ (ones &* 0x5C)
        let backslash = (bs &- ones) & ~bs & highs
        return (control | quote | backslash) != 0
    }

    /// Appends UTF-8 bytes as a quoted, escaped JSON string.
    public static func appendEscaped(utf8 value: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var start = 0
        let n = value.count
        var i = 0
        while i < n {
            let b = value[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C {
                i += 1
                continue
            }
            if start < i { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: value[start..<i])) }
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case 0x08: out.append(contentsOf: [0x5C, 0x62])
            case 0x0C: out.append(contentsOf: [0x5C, 0x66])
            default:
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            }
            i += 1
            start = i
        }
        if start < n { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: value[start..<n])) }
        out.append(UInt8(ascii: "\""))
    }
}
