import Foundation
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
    func sameBytesAsAppendEscaped(text: String) throws {
        let r = both(Array(text.utf8))
        #expect(r.write == r.append)
        // And it is the JSON string for `text` (both writers share their rules, so check them against a parser).
        let decoded = try JSONSerialization.jsonObject(with: Data(r.write), options: .fragmentsAllowed) as? String
        #expect(decoded == text)
    }

    /// The spelling, fixed: short escapes where JSON has them, lower-case `\u00XX` for the other control bytes,
    /// everything else (DEL, non-ASCII) as it is — stored records are hashed, so the spelling must not drift.
    @Test func spelling() {
        let cases: [(UInt8, String)] = [
            (0x22, #""\"""#), (0x5C, #""\\""#), (0x0A, #""\n""#), (0x0D, #""\r""#), (0x09, #""\t""#),
            (0x08, #""\b""#), (0x0C, #""\f""#), (0x00, #""\u0000""#), (0x1F, #""\u001f""#), (0x0B, #""\u000b""#),
            (0x7F, "\"\u{7F}\""), (0x41, #""A""#),
        ]
        for (byte, expected) in cases {
            let r = both([byte])
            #expect(String(decoding: r.write, as: UTF8.self) == expected, "byte \(byte)")
            #expect(r.append == r.write)
        }
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
        var rng = SplitMix64(seed: 20261203)
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
