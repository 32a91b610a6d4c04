/// Extracts the Spark/Delta error class and SQLSTATE embedded in an error message.
///
/// Messages look like `"\n[PARSE_SYNTAX_ERROR] Syntax error at or near 'INSER'. SQLSTATE: 42601 (line 1, pos 0)"`.
/// Only read when a statement or request has failed, so clarity wins over speed here.
public enum SQLErrorClass {
    /// Parses `message`.
    ///
    /// - Returns: The bracketed class at the start of the message (after optional whitespace), and the first
    ///   5-character SQLSTATE after `SQLSTATE: `; either may be nil.
    public static func parse(message: String) -> (errorClass: String?, sqlState: String?) {
        // Unicode-scalar semantics: classes are ASCII, and a combining mark after a code must not merge with its
        // last character (grapheme semantics would). The whitespace is ASCII's only (`\s` would also take NEL,
        // no-break space and the other Unicode spaces).
        let errorClass = #/^[ \t\n\x0B\f\r]*\[([A-Z0-9_.]+)\]/#.matchingSemantics(.unicodeScalar)
        let sqlState = #/SQLSTATE: ([0-9A-Z]{5})/#.matchingSemantics(.unicodeScalar)
        return (
            message.firstMatch(of: errorClass).map { String($0.1) },
            message.firstMatch(of: sqlState).map { String($0.1) }
        )
    }
}
