import Foundation

/// A SQL error as Databricks reports it: `[CLASS] text SQLSTATE: XXXXX`, with FAILED + BAD_REQUEST.
public struct SQLError: Error, Sendable, CustomStringConvertible {
    public var errorClass: String
    public var sqlState: String
    public var text: String
    /// Text after the SQLSTATE (Spark's `(line 1, pos 7)` and the `== SQL ==` context).
    public var suffix: String = ""
    /// Whether the message starts with a newline, as Spark parse errors do.
    public var leadingNewline = false
    /// The service error code in `status.error.error_code`.
    public var errorCode = "BAD_REQUEST"
    /// A message without a class or SQLSTATE (e.g. the INLINE byte limit); replaces the formatted one.
    public var plainMessage: String?

    public init(_ errorClass: String, _ sqlState: String, _ text: String) {
        self.errorClass = errorClass
        self.sqlState = sqlState
        self.text = text
    }

    public var message: String {
        if let plainMessage { return plainMessage }
        return (leadingNewline ? "\n" : "") + "[\(errorClass)] \(text) SQLSTATE: \(sqlState)\(suffix)"
    }

    public var description: String { message }
}

/// A lexical token.
struct Token: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case identifier  // bare word (keywords too)
        case quotedIdentifier  // `...`
        case string  // '...' or "..."
        case integer
        case decimal
        case parameter  // :name
        case symbol  // ( ) , . * = <> != < <= > >= ; + - / || :: [ ] ? and the hint delimiters /*+ */
        case end
    }

    var kind: Kind
    var text: String
    /// UTF-8 offset of the token in the statement.
    var offset: Int
    /// UTF-8 offset just after the token.
    var end: Int = 0

    func isKeyword(_ k: String) -> Bool { kind == .identifier && text.caseInsensitiveCompare(k) == .orderedSame }
    func isSymbol(_ s: String) -> Bool { kind == .symbol && text == s }
}

/// Splits a statement into tokens as Spark's lexer does: case-insensitive words (Unicode letters, digits and `_`),
/// backtick identifiers with ``` `` ``` escapes, `'…'`/`"…"` strings with `''` and backslash escapes, raw strings
/// `r'…'`/`R"…"` (no escapes), numbers, `:name` markers, `--` comments (a backslash right before the line break
/// continues them onto the next line, as in Spark), nested `/* */` comments, `/*+ … */` hints (their delimiters are
/// the symbols `/*+` and `*/`), and Spark's whitespace (ASCII and the Unicode spaces Spark skips, such as U+00A0).
struct Lexer {
    let sql: String
    let bytes: [UInt8]

    init(_ sql: String) {
        self.sql = sql
        self.bytes = Array(sql.utf8)
    }

    /// The Unicode scalar starting at byte `i` and its length in bytes (the input is valid UTF-8: it came from a
    /// `String`).
    static func scalar(_ bytes: [UInt8], at i: Int) -> (Unicode.Scalar, Int) {
        let b0 = bytes[i]
        let n = bytes.count
        var value: UInt32
        var len: Int
        switch b0 {
        case 0..<0x80: return (Unicode.Scalar(b0), 1)
        case 0xC0..<0xE0: value = UInt32(b0 & 0x1F); len = 2
        case 0xE0..<0xF0: value = UInt32(b0 & 0x0F); len = 3
        default: value = UInt32(b0 & 0x07); len = 4
        }
        guard i + len <= n else { return (Unicode.Scalar(0xFFFD)!, 1) }
        for k in 1..<len { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
        return (Unicode.Scalar(value) ?? Unicode.Scalar(0xFFFD)!, len)
    }

    /// Spark's `WS` rule: ASCII space, tab, line feed, form feed, carriage return, vertical tab, and U+00A0,
    /// U+1680, U+2000–U+200A, U+2028, U+202F, U+205F, U+3000.
    static func isSparkWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// A letter in Spark's sense (`\p{L}`): part of an unquoted identifier.
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return (s.value >= 65 && s.value <= 90) || (s.value >= 97 && s.value <= 122) }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    func tokenize() throws(SQLError) -> [Token] {
        var out: [Token] = []
        var i = 0
        let n = bytes.count
        func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        /// Whether an unquoted identifier may continue (or start) at byte `k`, and how many bytes that character takes.
        func identChar(_ k: Int) -> Int? {
            let c = bytes[k]
            if c < 0x80 { return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || isDigit(c) ? 1 : nil }
            let (s, len) = Self.scalar(bytes, at: k)
            return Self.isLetter(s) ? len : nil
        }
        // Every branch appends a token and moves `i` past it: the next turn of the loop records where it ended.
        var ended = 0
        while i < n {
            if out.count > ended {
                out[out.count - 1].end = i
                ended = out.count
            }
            let c = bytes[i]
            if c == 32 || (c >= 9 && c <= 13) {
                i += 1
                continue
            }
            if c >= 0x80 {
                let (s, len) = Self.scalar(bytes, at: i)
                if Self.isSparkWhitespace(s) {
                    i += len
                    continue
                }
            }
            if c == UInt8(ascii: "-") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "-") {
                // Up to CR or LF; a backslash right before a LF continues the comment (Spark's SIMPLE_COMMENT).
                i += 2
                while i < n && bytes[i] != 10 && bytes[i] != 13 {
                    i += bytes[i] == UInt8(ascii: "\\") && i + 1 < n && bytes[i + 1] == 10 ? 2 : 1
                }
                continue
            }
            if c == UInt8(ascii: "/") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "*") {
                if i + 2 < n && bytes[i + 2] == UInt8(ascii: "+") {
                    out.append(Token(kind: .symbol, text: "/*+", offset: i))
                    i += 3
                    continue
                }
                // Nested comments, as Spark's BRACKETED_COMMENT: `/*` opens one more level unless it starts a hint.
                let start = i
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
                guard depth == 0 else {
                    throw Parser.parseError(
                        "UNCLOSED_BRACKETED_COMMENT", "Found an unclosed bracketed comment. Please, append */ at the end of the comment.",
                        sql: sql, offset: start, bytes: bytes)
                }
                continue
            }
            let start = i
            // Raw strings: r'…' and r"…" take every character up to the closing quote.
            if (c == UInt8(ascii: "r") || c == UInt8(ascii: "R")) && i + 1 < n
                && (bytes[i + 1] == UInt8(ascii: "'") || bytes[i + 1] == UInt8(ascii: "\""))
            {
                let quote = bytes[i + 1]
                var j = i + 2
                while j < n && bytes[j] != quote { j += 1 }
                if j < n {
                    out.append(Token(kind: .string, text: text(i + 2, j), offset: start))
                    i = j + 1
                    continue
                }
            }
            if identChar(i) != nil && !isDigit(c) {
                while i < n, let len = identChar(i) { i += len }
                out.append(Token(kind: .identifier, text: text(start, i), offset: start))
                continue
            }
            if isDigit(c) || (c == UInt8(ascii: ".") && i + 1 < n && isDigit(bytes[i + 1])) {
                var isDecimal = false
                while i < n && isDigit(bytes[i]) { i += 1 }
                if i < n && bytes[i] == UInt8(ascii: ".") && (i + 1 >= n || identChar(i + 1) == nil || isDigit(bytes[i + 1])) {
                    isDecimal = true
                    i += 1
                    while i < n && isDigit(bytes[i]) { i += 1 }
                }
                if i < n && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                    var j = i + 1
                    if j < n && (bytes[j] == UInt8(ascii: "+") || bytes[j] == UInt8(ascii: "-")) { j += 1 }
                    if j < n && isDigit(bytes[j]) {
                        i = j
                        while i < n && isDigit(bytes[i]) { i += 1 }
                        isDecimal = true
                    }
                }
                // Spark's typed suffixes (1L, 1.0D, 2BD) are not supported: reject them as syntax.
                if i < n, identChar(i) != nil {
                    throw Parser.syntaxError(sql: sql, offset: start, near: text(start, i + 1), bytes: bytes)
                }
                out.append(Token(kind: isDecimal ? .decimal : .integer, text: text(start, i), offset: start))
                continue
            }
            if c == UInt8(ascii: "`") {
                var value: [UInt8] = []
                i += 1
                var closed = false
                while i < n {
                    if bytes[i] == UInt8(ascii: "`") {
                        if i + 1 < n && bytes[i + 1] == UInt8(ascii: "`") {
                            value.append(UInt8(ascii: "`"))
                            i += 2
                            continue
                        }
                        closed = true
                        i += 1
                        break
                    }
                    value.append(bytes[i])
                    i += 1
                }
                guard closed else { throw Parser.syntaxError(sql: sql, offset: start, near: "`", bytes: bytes) }
                out.append(Token(kind: .quotedIdentifier, text: String(decoding: value, as: UTF8.self), offset: start))
                continue
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                let quote = c
                var value: [UInt8] = []
                i += 1
                var closed = false
                while i < n {
                    let b = bytes[i]
                    if b == quote {
                        // Two quotes: Spark reads two adjacent literals and joins them, which is the quote itself
                        // only for `''` inside the same kind of literal; either way the literal goes on.
                        if i + 1 < n && bytes[i + 1] == quote {
                            value.append(quote)
                            i += 2
                            continue
                        }
                        closed = true
                        i += 1
                        break
                    }
                    if b == UInt8(ascii: "\\") && i + 1 < n {
                        let e = bytes[i + 1]
                        switch e {
                        case UInt8(ascii: "n"): value.append(10)
                        case UInt8(ascii: "t"): value.append(9)
                        case UInt8(ascii: "r"): value.append(13)
                        case UInt8(ascii: "0"): value.append(0)
                        default: value.append(e)
                        }
                        i += 2
                        continue
                    }
                    value.append(b)
                    i += 1
                }
                guard closed else {
                    throw Parser.syntaxError(sql: sql, offset: start, near: String(decoding: [quote], as: UTF8.self), bytes: bytes)
                }
                out.append(Token(kind: .string, text: String(decoding: value, as: UTF8.self), offset: start))
                continue
            }
            if c == UInt8(ascii: ":") && i + 1 < n && identChar(i + 1) != nil && !isDigit(bytes[i + 1]) {
                i += 1
                let s = i
                while i < n, let len = identChar(i) { i += len }
                out.append(Token(kind: .parameter, text: text(s, i), offset: start))
                continue
            }
            if c == UInt8(ascii: ":") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "`") {
                // :`name` — a quoted marker name.
                i += 2
                let s = i
                while i < n && bytes[i] != UInt8(ascii: "`") { i += 1 }
                guard i < n else { throw Parser.syntaxError(sql: sql, offset: start, near: ":", bytes: bytes) }
                out.append(Token(kind: .parameter, text: text(s, i), offset: start))
                i += 1
                continue
            }
            let three = i + 2 < n ? text(i, i + 3) : ""
            if three == "<=>" || three == ">>>" {
                out.append(Token(kind: .symbol, text: three, offset: start))
                i += 3
                continue
            }
            let two = i + 1 < n ? text(i, i + 2) : ""
            if ["<>", "!=", "<=", ">=", "==", "||", "::", "*/", "->", "=>", "<<", ">>", "!<", "!>"].contains(two) {
                out.append(Token(kind: .symbol, text: two, offset: start))
                i += 2
                continue
            }
            if "(),.*=<>;+-/%[]!&|^~:?".utf8.contains(c) {
                out.append(Token(kind: .symbol, text: text(i, i + 1), offset: start))
                i += 1
                continue
            }
            // Anything else (`@`, `{`, `$`, a backslash, a non-letter outside quotes) is a syntax error there.
            let len = c < 0x80 ? 1 : Self.scalar(bytes, at: i).1
            throw Parser.syntaxError(sql: sql, offset: start, near: text(i, i + len), bytes: bytes)
        }
        if out.count > ended { out[out.count - 1].end = i }
        out.append(Token(kind: .end, text: "", offset: n, end: n))
        return out
    }

    private func text(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<min(b, bytes.count)], as: UTF8.self) }
}
