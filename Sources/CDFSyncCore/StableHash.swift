/// A 64-bit content hash that is the same in every process and on every run.
///
/// Swift's `Hasher` is randomly seeded per process, so it cannot be stored. This is FNV-1a over 8-byte
/// words with a final avalanche (from SplitMix64); it is used to tell an unchanged record from a changed
/// one, not for security.
public struct StableHash: Sendable {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        let whole = n & ~7
        mixWords(UnsafeRawBufferPointer(rebasing: bytes[0..<whole]))
        var i = whole
        while i < n {
            state = (state ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3
            i += 1
        }
        // Mix in the length so that "ab"+"c" and "a"+"bc" differ when combined field by field.
        endPieces(totalCount: n)
    }

    /// Combines one piece of a buffer too large (or too scattered) to pass to ``combine(_:)-(UnsafeRawBufferPointer)``
    /// at once: pieces whose lengths are multiples of 8, then ``endPieces(totalCount:)``, hash exactly like one
    /// `combine` of their concatenation.
    public mutating func combinePiece(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count % 8 == 0, "a piece must be a multiple of 8 bytes")
        mixWords(bytes)
    }

    /// Ends a run of ``combinePiece(_:)`` calls whose lengths add up to `totalCount`.
    public mutating func endPieces(totalCount: Int) {
        state = (state ^ UInt64(truncatingIfNeeded: totalCount)) &* 0x0000_0100_0000_01B3
    }

    /// The 8-byte words of `bytes` (whose length is a multiple of 8).
    @inline(__always)
    private mutating func mixWords(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            state = (state ^ w) &* 0x0000_0100_0000_01B3
            state ^= state >> 29
            i += 8
        }
    }

    public mutating func combine(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { combine($0) }
    }

    public var value: UInt64 {
        var z = state &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Hashes one byte sequence.
    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h = StableHash()
        h.combine(bytes)
        return h.value
    }
}
