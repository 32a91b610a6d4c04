/// Appends compact JSON to a byte buffer without Foundation.
///
/// Used for panel records, outbox lines and NDJSON output, where `JSONEncoder` would dominate the cost.
/// Strings are escaped per RFC 8259: `"` `\` and control characters; everything else (including non-ASCII
/// UTF-8) is copied as is.
public struct JSONWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8]
    private var needsComma: [Bool] = []
    /// Offsets a writer may note in `bytes` (`RecordMapper` notes where each top-level value starts and ends);
    /// emptied by ``reset()``.
    public var marks: [Int] = []

    public init(reservingCapacity capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Removes everything written, keeping the allocation.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma.removeAll(keepingCapacity: true)
        marks.removeAll(keepingCapacity: true)
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
    /// ``appendEscaped(utf8:to:)`` (both take their rules from `nextEscape` and `escapeSequence`), for hot loops
    /// that write a whole record into one buffer sized up front (no per-call capacity or uniqueness checks).
    public static func writeEscaped(utf8 value: UnsafeRawBufferPointer, to dst: UnsafeMutableRawPointer) -> Int {
        dst.storeBytes(of: UInt8(ascii: "\""), as: UInt8.self)
        // 8–16 bytes (an external id, most values): its first and last words cover it; neither needing an escape,
        // it is copied between quotes without the scan below.
        let n = value.count
        if n >= 8, n <= 16, let p = value.baseAddress,
            !wordNeedsEscape(p.loadUnaligned(as: UInt64.self)),
            !wordNeedsEscape(p.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self))
        {
            (dst + 1).copyShort(from: p, count: n)
            dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: n &+ 1, as: UInt8.self)
            return n &+ 2
        }
        var o = 1
        var start = 0
        while true {
            let i = nextEscape(in: value, from: start)
            if start < i {
                (dst + o).copyShort(from: value.baseAddress! + start, count: i - start)
                o += i - start
            }
            if i == value.count { break }
            let (sequence, count) = escapeSequence(value[i])
            withUnsafeBytes(of: sequence) { (dst + o).copyMemory(from: $0.baseAddress!, byteCount: count) }
            o += count
            start = i + 1
        }
        dst.storeBytes(of: UInt8(ascii: "\""), toByteOffset: o, as: UInt8.self)
        return o + 1
    }

    /// The index of the first byte at or after `start` that JSON requires escaped (a control byte, a quote or a
    /// backslash), or `value.count`. Skips eight bytes at a time while none of them can be one.
    @inline(__always)
    static func nextEscape(in value: UnsafeRawBufferPointer, from start: Int) -> Int {
        let n = value.count
        guard let src = value.baseAddress else { return n }
        var i = start
        while i < n {
            if i &+ 8 <= n, !wordNeedsEscape(src.loadUnaligned(fromByteOffset: i, as: UInt64.self)) {
                i &+= 8
                continue
            }
            let b = src.load(fromByteOffset: i, as: UInt8.self)
            if b < 0x20 || b == 0x22 || b == 0x5C { return i }
            i &+= 1
        }
        return n
    }

    /// The escape sequence for a byte `nextEscape` stopped at: its bytes (the first `count` are used) and count.
    @inline(__always)
    static func escapeSequence(_ b: UInt8) -> (bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8), count: Int) {
        switch b {
        case 0x22: ((0x5C, 0x22, 0, 0, 0, 0), 2)
        case 0x5C: ((0x5C, 0x5C, 0, 0, 0, 0), 2)
        case 0x0A: ((0x5C, 0x6E, 0, 0, 0, 0), 2)
        case 0x0D: ((0x5C, 0x72, 0, 0, 0, 0), 2)
        case 0x09: ((0x5C, 0x74, 0, 0, 0, 0), 2)
        case 0x08: ((0x5C, 0x62, 0, 0, 0, 0), 2)
        case 0x0C: ((0x5C, 0x66, 0, 0, 0, 0), 2)
        default: ((0x5C, 0x75, 0x30, 0x30, hexDigit(b >> 4), hexDigit(b & 0xF)), 6)
        }
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
        while true {
            let i = nextEscape(in: value, from: start)
            if start < i { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: value[start..<i])) }
            if i == value.count { break }
            let (sequence, count) = escapeSequence(value[i])
            withUnsafeBytes(of: sequence) { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            start = i + 1
        }
        out.append(UInt8(ascii: "\""))
    }
}
