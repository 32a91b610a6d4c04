import CDFSyncCore
import Testing

/// `JSONWriter.writeEscaped` (the pointer-based writer of passthrough records) must produce exactly the bytes of
/// `JSONWriter.appendEscaped`: the record bytes are hashed to tell unchanged rows from changed ones, so a
/// different spelling of the same string would turn a replay into updates.
@Suite("JSON escaping: pointer writer")
struct JSONEscapeTests {
    func both(_ bytes: [UInt8]) -> (append: [UInt8], write: [UInt8]) {
        var appended: [UInt8] = []
        bytes.withUnsafeBytes { JSONWriter.appendEscaped(utf8: $0, to: &appended) }
        var out = [UInt8](repeating: 0xEE, count: JSONWriter.escapedBound(bytes.count) + 8)
        let n = bytes.withUnsafeBytes { v in out.withUnsafeMutableBytes { JSONWriter.writeEscaped(utf8: v, to: $0.baseAddress!) } }
        #expect(n <= JSONWriter.escapedBound(bytes.count))
        #expect(out[n...].allSatisfy { $0 == 0xEE }, "nothing written past the returned length")
        return (appended, Array(out[..<n]))
    }

    @Test(arguments: ["", "plain", "a\"b", "back\\slash", "tab\there", "line\nbreak\r\n", "\u{01}\u{1F}\u{7F}",
                      "İstanbul – ünïcödé 😀", "\"", "\\", "end\u{0C}\u{08}"])
    func sameBytesAsAppendEscaped(text: String) {
        let r = both(Array(text.utf8))
        #expect(r.write == r.append)
    }

    @Test func everyByteValueAlone() {
        for b in 0...255 {
            let r = both([UInt8(b)])
            #expect(r.write == r.append, "byte \(b)")
        }
    }

    /// The writer skips eight bytes at a time: one byte that needs escaping (or one that must not be escaped
    /// but sits next to the boundaries, 0x1F/0x20/0x7F/0x80/0xFF) at every position of plain strings of every
    /// length up to 40, so every word alignment is covered.
    @Test func oneSpecialByteAtEveryPosition() {
        let specials: [UInt8] = Array(0x00...0x20) + [0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xC3, 0xFF]
        for length in 1...40 {
            for position in 0..<length {
                for special in specials {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes[position] = special
                    let r = both(bytes)
                    #expect(r.write == r.append, "length \(length), byte \(special) at \(position)")
                }
            }
        }
    }

    @Test func randomStrings() {
        var rng = SplitMix(seed: 20261203)
        for _ in 0..<2_000 {
            let length = Int(rng.next() % 64)
            let bytes = (0..<length).map { _ -> UInt8 in
                let r = rng.next()
                // Mostly printable ASCII, often the bytes that need escaping.
                return r % 4 == 0 ? [0x22, 0x5C, 0x0A, 0x00, 0x1F, 0xC3, 0xA9][Int(r >> 8) % 7] : UInt8(0x20 + (r >> 16) % 95)
            }
            let r = both(bytes)
            #expect(r.write == r.append)
        }
    }
}

private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
