import CDFSyncCore
import Testing

/// The edges of `SQLErrorClass.parse` that its examples in ModelTests do not reach: which whitespace may precede the
/// class, non-ASCII characters next to a class or a code, and agreement with the byte-by-byte parser it replaced on
/// generated messages.
@Suite("SQLErrorClass edges")
struct SQLErrorClassEdgeTests {
    @Test(arguments: [
        // ASCII whitespace before the class, CR LF (one Swift Character) included; Unicode spaces are not skipped.
        ("\r\n[X] y", "X", nil),
        ("\u{0B}\u{0C}[VT_FF] y", "VT_FF", nil),
        ("\u{A0}[NBSP] y", nil, nil),
        ("\u{85}[NEL] y", nil, nil),
        ("\u{2003}[EM_SPACE] y", nil, nil),
        // A class ends at its bracket: no closing bracket, a combining mark or a non-ASCII letter inside, none.
        ("[UNCLOSED", nil, nil),
        ("[AB\u{301}] y", nil, nil),
        ("[ÉCLAIR] y", nil, nil),
        ("[A.B_9]", "A.B_9", nil),
        // A code is exactly five ASCII capitals or digits after exactly "SQLSTATE: "; what follows does not matter.
        ("x SQLSTATE: 42601\u{301}", nil, "42601"),
        ("x SQLSTATE: 426011", nil, "42601"),
        ("x SQLSTATE: ４2601", nil, nil),
        ("x SQLSTATE:  42601", nil, nil),
        ("x sqlstate: 42601", nil, nil),
        ("x SQLSTATE: 42p01 then SQLSTATE: 42P01", nil, "42P01"),
        ("SQLSTATE: 4260", nil, nil),
        ("[É] SQLSTATE: 😀😀😀😀😀 SQLSTATE: HY000", nil, "HY000"),
    ] as [(String, String?, String?)])
    func parses(message: String, errorClass: String?, sqlState: String?) {
        let parsed = SQLErrorClass.parse(message: message)
        #expect(parsed.errorClass == errorClass)
        #expect(parsed.sqlState == sqlState)
    }

    /// Messages built from the pieces that matter (brackets, class characters, whitespace of both kinds, the marker
    /// and near misses of it, combining marks, emoji) parse as the byte-by-byte parser parsed them.
    @Test func agreesWithTheByteParserOnGeneratedMessages() {
        let pieces = [
            "[", "]", "A", "Z", "0", "9", "_", ".", "a", " ", "\t", "\n", "\r\n", "\u{0B}", "\u{0C}", "\u{A0}", "\u{85}",
            "SQLSTATE: ", "SQLSTATE:", "SQLSTATE: 4", "42P01", "0A000", "\u{301}", "É", "😀", "x",
        ]
        let whitespace = [" ", "\t", "\n", "\r\n", "\u{0B}", "\u{0C}", "\u{A0}", "\u{85}"]
        let classPieces = ["A", "Z", "0", "9", "_", ".", "DELTA_", "a", "\u{301}", "É"]
        var state: UInt64 = 0x5EED
        func next() -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        var classes = 0
        var states = 0
        for _ in 0..<5_000 {
            // Half of the messages start like a class: whitespace, a bracket, class characters (and near misses).
            var message = ""
            if next() % 2 == 0 {
                message += (0..<(next() % 3)).map { _ in whitespace[next() % whitespace.count] }.joined()
                message += "[" + (0..<(next() % 4)).map { _ in classPieces[next() % classPieces.count] }.joined()
                if next() % 5 != 0 { message += "]" }
            }
            message += (0..<(next() % 12)).map { _ in pieces[next() % pieces.count] }.joined()
            let parsed = SQLErrorClass.parse(message: message)
            let reference = ByteParser.parse(message: message)
            #expect(parsed.errorClass == reference.errorClass, "\(message.debugDescription)")
            #expect(parsed.sqlState == reference.sqlState, "\(message.debugDescription)")
            if reference.errorClass != nil { classes += 1 }
            if reference.sqlState != nil { states += 1 }
        }
        // The generator reaches both matches often enough for the comparison to mean something.
        #expect(classes > 150 && states > 150, "classes \(classes), states \(states)")
    }
}

/// The byte-by-byte parser `SQLErrorClass` used before its Regex, kept as the reference: `^\s*\[([A-Z0-9_.]+)\]`
/// with ASCII whitespace, and the first `SQLSTATE: ` followed by five ASCII capitals or digits, over UTF-8.
private enum ByteParser {
    static func parse(message: String) -> (errorClass: String?, sqlState: String?) {
        let bytes = Array(message.utf8)
        return (errorClass(bytes), sqlState(bytes))
    }

    static func isClassByte(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2E
    }

    static func errorClass(_ b: [UInt8]) -> String? {
        var i = 0
        while i < b.count, b[i] == 0x20 || (b[i] >= 0x09 && b[i] <= 0x0D) { i += 1 }
        guard i < b.count, b[i] == 0x5B else { return nil }
        i += 1
        let start = i
        while i < b.count, isClassByte(b[i]) { i += 1 }
        guard i > start, i < b.count, b[i] == 0x5D else { return nil }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    static func sqlState(_ b: [UInt8]) -> String? {
        let marker = Array("SQLSTATE: ".utf8)
        var i = 0
        while i + marker.count + 5 <= b.count {
            if b[i..<(i + marker.count)].elementsEqual(marker) {
                let s = i + marker.count
                let code = b[s..<(s + 5)]
                if code.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) }) {
                    return String(decoding: code, as: UTF8.self)
                }
            }
            i += 1
        }
        return nil
    }
}
