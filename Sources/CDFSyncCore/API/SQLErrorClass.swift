/// Extracts the Spark/Delta error class and SQLSTATE embedded in an error message.
///
/// Messages look like `"\n[PARSE_SYNTAX_ERROR] Syntax error at or near 'INSER'. SQLSTATE: 42601 (line 1, pos 0)"`.
/// Equivalent to the patterns `^\s*\[([A-Z0-9_.]+)\]` and `SQLSTATE: ([0-9A-Z]{5})`, hand-rolled over UTF-8.
public enum SQLErrorClass {
    /// Parses `message`.
    ///
    /// - Returns: The bracketed class at the start of the message (after optional whitespace), and the first
    ///   5-character SQLSTATE after `SQLSTATE: `; either may be nil.
    public static func parse(message: String) -> (errorClass: String?, sqlState: String?) {
        let bytes = Array(message.utf8)
        return (errorClass(bytes), sqlState(bytes))
    }

    private static func isClassByte(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2E
    }

    private static func errorClass(_ b: [UInt8]) -> String? {
        var i = 0
        // \s in the usual regex engines: space, \t, \n, \v, \f, \r.
        while i < b.count, b[i] == 0x20 || (b[i] >= 0x09 && b[i] <= 0x0D) { i += 1 }
        guard i < b.count, b[i] == 0x5B else { return nil }
        i += 1
        let start = i
        while i < b.count, isClassByte(b[i]) { i += 1 }
        guard i > start, i < b.count, b[i] == 0x5D else { return nil }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    private static func sqlState(_ b: [UInt8]) -> String? {
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
