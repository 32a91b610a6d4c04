/// One token of Databricks SQL text, as `SQLTokenizer` reads it.
public struct SQLToken: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// An unquoted identifier or keyword: ASCII letters, digits and `_`, not starting with a digit.
        case word
        /// A number as written (`42`, `1.5e3`, `.5`, `10L`, `2BD`).
        case number
        /// A backtick-quoted identifier (`` `a``b` `` is `` a`b ``).
        case quotedIdentifier
        /// `'…'`, `"…"` (backslash escapes; a doubled quote stays inside), or a raw `r'…'` / `R"…"`.
        case string
        /// A parameter marker: `:name`, `` :`name` `` or `?`.
        case parameter
        /// An operator or punctuation: `(` `)` `,` `.` `;` `=` `<=>` `::` …, and the hint delimiters `/*+` and `*/`.
        case symbol
    }

    public var kind: Kind
    /// The token exactly as written in the source.
    public var text: String
    /// Where the token is in the source, in UTF-8 bytes.
    public var utf8Range: Range<Int>
    /// 1-based line of the token's first character.
    public var line: Int
    /// 1-based column of the token's first character, counted in Unicode scalars.
    public var column: Int

    public init(kind: Kind, text: String, utf8Range: Range<Int>, line: Int, column: Int) {
        self.kind = kind
        self.text = text
        self.utf8Range = utf8Range
        self.line = line
        self.column = column
    }

    /// Whether this is the unquoted word `keyword`, compared case-insensitively (ASCII).
    public func isWord(_ keyword: String) -> Bool {
        kind == .word && text.utf8.count == keyword.utf8.count
            && zip(text.utf8, keyword.utf8).allSatisfy { SQLTokenizer.upper($0) == SQLTokenizer.upper($1) }
    }

    public func isSymbol(_ symbol: String) -> Bool { kind == .symbol && text == symbol }
}

/// Text the tokenizer cannot read: an unterminated string, quoted identifier or comment, or a character that is not
/// part of Databricks SQL outside quotes.
public struct SQLLexicalError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. `unterminated string`.
    public var problem: String
    /// The offending character or the opening delimiter, as written (or `U+XXXX` for an invisible character).
    public var token: String
    public var line: Int
    public var column: Int

    public var description: String { "\(problem) at line \(line), column \(column) ('\(token)')" }
}

/// A tokenizer for Databricks SQL that reads text the way Spark's lexer does where it matters for what a statement
/// is: comments and whitespace are skipped, quotes hide everything inside them.
///
/// - `--` comments run to the end of the line (a carriage return or a line feed); a backslash right before the line
///   feed continues the comment onto the next line, as in Spark.
/// - `/* … */` comments nest (`/* a /* b */ c */` is one comment); `/*+` starts a hint instead (its delimiters are
///   symbols, its contents are tokens), also inside a comment, where it does not open a nested level.
/// - Strings: `'…'` and `"…"` with backslash escapes (`\'` does not end the string); two quotes in a row keep the
///   string going (Spark reads two adjacent literals, which ends in the same place); raw strings `r'…'`, `R"…"` end at
///   the first matching quote, backslashes included.
/// - Quoted identifiers: `` `…` `` with ``` `` ``` for a backtick.
/// - Whitespace: ASCII, plus the Unicode spaces Spark skips (U+00A0, U+1680, U+2000–U+200A, U+2028, U+202F, U+205F,
///   U+3000).
/// - Unquoted words are ASCII only: any other character outside quotes and comments (a letter from another script,
///   a fullwidth `；`, a zero-width space, `@`, `{`, `$`, a backslash, a control character) is a lexical error. Spark
///   would read a Unicode letter as part of a name; refusing it keeps look-alikes out of text that is checked word
///   by word.
///
/// No I/O, no recursion: the loop is bounded by the text's length.
public enum SQLTokenizer {
    @inline(__always)
    static func upper(_ b: UInt8) -> UInt8 { b >= 97 && b <= 122 ? b - 32 : b }

    /// Spark's whitespace characters beyond ASCII.
    public static func isSparkUnicodeWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// A readable name for a character a message shows: itself when printable ASCII, else `U+XXXX` with a name for
    /// the look-alikes people meet (`U+FF1B FULLWIDTH SEMICOLON`).
    public static func describe(_ s: Unicode.Scalar) -> String {
        if s.value >= 0x21 && s.value < 0x7F { return String(Character(s)) }
        let hex = String(s.value, radix: 16, uppercase: true)
        let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        if let name = s.properties.name ?? s.properties.nameAlias { return "\(code) \(name)" }
        return code
    }

    /// The tokens of `text`, or the first place it cannot be read.
    public static func tokenize(_ text: String) -> Result<[SQLToken], SQLLexicalError> {
        let bytes = Array(text.utf8)
        let n = bytes.count
        var tokens: [SQLToken] = []
        var i = 0
        // Line and column of byte `i`, moved forward by `advance(to:)`.
        var line = 1
        var column = 1
        var at = 0
        func advance(to k: Int) {
            while at < k {
                let b = bytes[at]
                if b == 10 {
                    line += 1
                    column = 1
                } else if b & 0xC0 != 0x80 {
                    column += 1
                }
                at += 1
            }
        }
        func fail(_ problem: String, _ token: String, at k: Int) -> Result<[SQLToken], SQLLexicalError> {
            advance(to: k)
            return .failure(SQLLexicalError(problem: problem, token: token, line: line, column: column))
        }
        func emit(_ kind: SQLToken.Kind, _ start: Int, _ end: Int) {
            advance(to: start)
            tokens.append(SQLToken(
                kind: kind, text: String(decoding: bytes[start..<end], as: UTF8.self), utf8Range: start..<end,
                line: line, column: column))
        }
        func isWordStart(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        func isWordChar(_ b: UInt8) -> Bool { isWordStart(b) || isDigit(b) }
        func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }

        while i < n {
            let c = bytes[i]
            if c == 32 || (c >= 9 && c <= 13) {
                i += 1
                continue
            }
            if c >= 0x80 {
                let (s, len) = scalar(bytes, at: i)
                if isSparkUnicodeWhitespace(s) {
                    i += len
                    continue
                }
                return fail(
                    "a non-ASCII character outside a string, a quoted identifier or a comment", describe(s), at: i)
            }
            let start = i
            if c == UInt8(ascii: "-") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "-") {
                i += 2
                while i < n && bytes[i] != 10 && bytes[i] != 13 {
                    i += bytes[i] == UInt8(ascii: "\\") && i + 1 < n && bytes[i + 1] == 10 ? 2 : 1
                }
                continue
            }
            if c == UInt8(ascii: "/") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "*") {
                if i + 2 < n && bytes[i + 2] == UInt8(ascii: "+") {
                    emit(.symbol, i, i + 3)
                    i += 3
                    continue
                }
                var depth = 1
                i += 2
                while i < n && depth > 0 {
                    if bytes[i] == UInt8(ascii: "*") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        i += 2
                    } else if bytes[i] == UInt8(ascii: "/") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "*")
                        && !(i + 2 < n && bytes[i + 2] == UInt8(ascii: "+"))
                    {
                        depth += 1
                        i += 2
                    } else {
                        i += 1
                    }
                }
                if depth > 0 { return fail("an unterminated /* comment", "/*", at: start) }
                continue
            }
            // Raw strings first: `r'…'` is one string, not the word `r` and a string.
            if (c == UInt8(ascii: "r") || c == UInt8(ascii: "R")) && i + 1 < n
                && (bytes[i + 1] == UInt8(ascii: "'") || bytes[i + 1] == UInt8(ascii: "\""))
            {
                let quote = bytes[i + 1]
                var j = i + 2
                while j < n && bytes[j] != quote { j += 1 }
                guard j < n else {
                    return fail("an unterminated raw string", String(decoding: bytes[i...i + 1], as: UTF8.self), at: start)
                }
                emit(.string, start, j + 1)
                i = j + 1
                continue
            }
            if isWordStart(c) {
                while i < n && isWordChar(bytes[i]) { i += 1 }
                emit(.word, start, i)
                continue
            }
            if isDigit(c) || (c == UInt8(ascii: ".") && i + 1 < n && isDigit(bytes[i + 1])) {
                while i < n && isDigit(bytes[i]) { i += 1 }
                if i < n && bytes[i] == UInt8(ascii: ".") && !(i + 1 < n && isWordStart(bytes[i + 1])) {
                    i += 1
                    while i < n && isDigit(bytes[i]) { i += 1 }
                }
                if i < n && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                    var j = i + 1
                    if j < n && (bytes[j] == UInt8(ascii: "+") || bytes[j] == UInt8(ascii: "-")) { j += 1 }
                    if j < n && isDigit(bytes[j]) {
                        i = j
                        while i < n && isDigit(bytes[i]) { i += 1 }
                    }
                }
                // Suffixes (`10L`, `2BD`) and the rest of a name that starts with a digit stay in the token: Spark
                // never reads a keyword out of the middle of such a run.
                while i < n && isWordChar(bytes[i]) { i += 1 }
                emit(.number, start, i)
                continue
            }
            if c == UInt8(ascii: "`") {
                i += 1
                var closed = false
                while i < n {
                    if bytes[i] == UInt8(ascii: "`") {
                        if i + 1 < n && bytes[i + 1] == UInt8(ascii: "`") {
                            i += 2
                            continue
                        }
                        closed = true
                        i += 1
                        break
                    }
                    i += 1
                }
                guard closed else { return fail("an unterminated `quoted identifier`", "`", at: start) }
                emit(.quotedIdentifier, start, i)
                continue
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                i += 1
                var closed = false
                while i < n {
                    let b = bytes[i]
                    if b == UInt8(ascii: "\\") {
                        i += 2  // the escaped character, whatever it is (a quote, a backslash, a line break)
                        continue
                    }
                    if b == c {
                        if i + 1 < n && bytes[i + 1] == c {
                            i += 2
                            continue
                        }
                        closed = true
                        i += 1
                        break
                    }
                    i += 1
                }
                guard closed else {
                    return fail("an unterminated string", String(decoding: [c], as: UTF8.self), at: start)
                }
                emit(.string, start, i)
                continue
            }
            if c == UInt8(ascii: ":") && i + 1 < n && isWordStart(bytes[i + 1]) {
                i += 1
                while i < n && isWordChar(bytes[i]) { i += 1 }
                emit(.parameter, start, i)
                continue
            }
            if c == UInt8(ascii: ":") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "`") {
                i += 2
                while i < n && bytes[i] != UInt8(ascii: "`") { i += 1 }
                guard i < n else { return fail("an unterminated `quoted identifier`", "`", at: start + 1) }
                i += 1
                emit(.parameter, start, i)
                continue
            }
            if c == UInt8(ascii: "?") {
                emit(.parameter, i, i + 1)
                i += 1
                continue
            }
            if let len = symbolLength(bytes, at: i) {
                emit(.symbol, i, i + len)
                i += len
                continue
            }
            return fail(
                "a character that is not part of Databricks SQL outside a string or a comment",
                describe(Unicode.Scalar(c)), at: i)
        }
        return .success(tokens)
    }

    private static let threeCharSymbols: [[UInt8]] = ["<=>", ">>>"].map { Array($0.utf8) }
    private static let twoCharSymbols: [[UInt8]] = [
        "<>", "!=", "<=", ">=", "==", "||", "::", "->", "=>", "<<", ">>", "!<", "!>", "*/",
    ].map { Array($0.utf8) }
    private static let oneCharSymbols = Set("(),.;=<>+-*/%[]!&|^~:".utf8)

    private static func symbolLength(_ bytes: [UInt8], at i: Int) -> Int? {
        for (len, list) in [(3, threeCharSymbols), (2, twoCharSymbols)] where i + len <= bytes.count {
            if list.contains(where: { $0[...] == bytes[i..<i + len] }) { return len }
        }
        return oneCharSymbols.contains(bytes[i]) ? 1 : nil
    }

    /// The Unicode scalar starting at byte `i` of valid UTF-8, and its length.
    static func scalar(_ bytes: [UInt8], at i: Int) -> (Unicode.Scalar, Int) {
        let b0 = bytes[i]
        var value: UInt32
        let len: Int
        switch b0 {
        case 0..<0x80: return (Unicode.Scalar(b0), 1)
        case 0xC0..<0xE0: value = UInt32(b0 & 0x1F); len = 2
        case 0xE0..<0xF0: value = UInt32(b0 & 0x0F); len = 3
        default: value = UInt32(b0 & 0x07); len = 4
        }
        guard i + len <= bytes.count else { return (Unicode.Scalar(0xFFFD)!, 1) }
        for k in 1..<len { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
        return (Unicode.Scalar(value) ?? Unicode.Scalar(0xFFFD)!, len)
    }
}
