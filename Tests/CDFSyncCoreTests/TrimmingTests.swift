import Foundation
import Testing

@testable import CDFSyncCore

/// The byte-level fast paths of whitespace trimming and email checks agree with the `Character` definitions.
@Suite struct TrimmingTests {
    /// The definition: `Character.isWhitespace` from both ends.
    static func reference(_ s: String) -> Substring {
        var t = s[...]
        while let f = t.first, f.isWhitespace { t.removeFirst() }
        while let l = t.last, l.isWhitespace { t.removeLast() }
        return t
    }

    @Test func trimmingMatchesTheCharacterDefinition() {
        let pieces = [" ", "\t", "\n", "\r", "\r\n", "\u{0B}", "\u{0C}", "a", "B c", "x", "\u{A0}", "\u{2003}", "é",
                      "e\u{301}", " \u{301}", "\u{600} ", "日本", "", "@", "\u{85}"]
        var state: UInt64 = 42
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        for _ in 0..<20_000 {
            let s = (0..<(next() % 6)).map { _ in pieces[next() % pieces.count] }.joined()
            #expect(s.trimmingWhitespace() == Self.reference(s), "\(s.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }

    @Test func emailsWithSpacesOrSeparatorsAreRefusedEitherWay() {
        for bad in ["a b@example.com", "a\tb@example.com", "a,b@example.com", "a;b@example.com", "<a@example.com>",
                    "a\u{2003}b@example.com", "ä,b@example.com"] {
            if case .value(let v) = Normalize.email(bad) { Issue.record("accepted '\(bad)' as \(v)") }
        }
        #expect(Normalize.email("  Ana.Lima@Example.COM\r\n") == .value("ana.lima@example.com"))
        #expect(Normalize.email("\u{2003}ana@example.com\u{A0}") == .value("ana@example.com"))
    }
}

/// The byte path of phone normalisation gives what the `Character` path gives.
@Suite struct PhoneFastPathTests {
    @Test func asciiAndUnicodeSpellingsAgree() {
        // The same numbers with an ASCII separator (byte path) and with a no-break space (Character path).
        for (ascii, region) in [("+44 20 7946 0958", nil), ("0044 (20) 7946-0958", nil), ("030 1234567", "DE"),
                                ("(415) 555-2671", "us"), ("415 555 2671 x12", "US"), ("06.12.34.56.78", "FR")] as [(String, String?)] {
            let unicode = ascii.replacingOccurrences(of: " ", with: "\u{00A0}")
            #expect(Normalize.phone(ascii, defaultRegion: region) == Normalize.phone(unicode, defaultRegion: region), "\(ascii)")
            if case .invalid(let why) = Normalize.phone(ascii, defaultRegion: region) { Issue.record("\(ascii): \(why)") }
        }
        #expect(Normalize.phone("+44 20 7946 095#", defaultRegion: nil) == .invalid("phone '+44 20 7946 095#' contains '#'"))
        #expect(Normalize.phone("+44 20 79+46 0958", defaultRegion: nil) == .invalid("phone '+44 20 79+46 0958' contains '+'"))
        #expect(Normalize.phone("x12", defaultRegion: "GB") == .invalid("phone 'x12' contains 'x'"))
    }
}

/// The byte path of the email check gives what the `Character` path gives, message included.
@Suite struct EmailFastPathTests {
    /// The `Character` definition (what `Normalize.email` does for a non-ASCII address).
    static func reference(_ raw: String) -> Normalize.Outcome {
        let s = raw.trimmingWhitespace().lowercased()
        return s.isEmpty ? .invalid("email is empty") : Normalize.characterEmail(s, raw)
    }

    @Test func asciiAddressesAgreeWithTheCharacterDefinition() {
        let pieces = ["a", "B", "1", ".", "..", "@", "-", "ex", "com", "io", " ", ",", ";", "<", ">", "_", "+", "x1",
                      "\t", String(repeating: "l", count: 60)]
        var state: UInt64 = 7
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        var valid = 0
        for _ in 0..<30_000 {
            let s = (0..<(1 + next() % 8)).map { _ in pieces[next() % pieces.count] }.joined()
            let got = Normalize.email(s)
            #expect(got == Self.reference(s), "\(s.debugDescription)")
            if case .value = got { valid += 1 }
        }
        // Well-formed addresses: enough of the generated ones pass for the comparison to cover the valid path.
        for s in ["ana@example.com", "a.b-c+d@sub.example.co.uk", " Ana.Lima@Example.COM "] {
            #expect(Normalize.email(s) == Self.reference(s))
            if case .value = Normalize.email(s) { valid += 1 }
        }
        #expect(valid >= 3)
    }
}
