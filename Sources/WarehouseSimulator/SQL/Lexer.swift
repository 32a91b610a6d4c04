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
        case symbol  // ( ) , . * = <> != < <= > >= ; + - / || ::
        case end
    }

    var kind: Kind
    var text: String
    /// UTF-8 offset of the token in the statement.
    var offset: Int

    func isKeyword(_ k: String) -> Bool { kind == .identifier && text.caseInsensitiveCompare(k) == .orderedSame }
    func isSymbol(_ s: String) -> Bool { kind == .symbol && text == s }
}

/// Splits a statement into tokens: case-insensitive words, backtick identifiers with ``` `` ``` escapes,
/// strings with `''` and backslash escapes, numbers, `:name` markers, comments.
struct Lexer {
    let sql: String
    let bytes: [UInt8]

    init(_ sql: String) {
        self.sql = sql
        self.bytes = Array(sql.utf8)
    }

    func tokenize() throws(SQLError) -> [Token] {
        var out: [Token] = []
        var i = 0
        let n = bytes.count
        func isIdentStart(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c >= 0x80 }
        func isIdentChar(_ c: UInt8) -> Bool { isIdentStart(c) || (c >= 48 && c <= 57) }
        func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        while i < n {
            let c = bytes[i]
            if c == 32 || c == 9 || c == 10 || c == 13 {
                i += 1
                continue
            }
            if c == UInt8(ascii: "-") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "-") {
                while i < n && bytes[i] != 10 { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/") && i + 1 < n && bytes[i + 1] == UInt8(ascii: "*") {
                let start = i
                i += 2
                while i + 1 < n && !(bytes[i] == UInt8(ascii: "*") && bytes[i + 1] == UInt8(ascii: "/")) { i += 1 }
                guard i + 1 < n else { throw Parser.syntaxError(sql: sql, offset: start, near: "/*", bytes: bytes) }
                i += 2
                continue
            }
            let start = i
            if isIdentStart(c) {
                while i < n && isIdentChar(bytes[i]) { i += 1 }
                out.append(Token(kind: .identifier, text: text(start, i), offset: start))
                continue
            }
            if isDigit(c) || (c == UInt8(ascii: ".") && i + 1 < n && isDigit(bytes[i + 1])) {
                var isDecimal = false
                while i < n && isDigit(bytes[i]) { i += 1 }
                if i < n && bytes[i] == UInt8(ascii: ".") && (i + 1 >= n || !isIdentStart(bytes[i + 1])) {
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
                if i < n && isIdentStart(bytes[i]) {
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
            if c == UInt8(ascii: ":") && i + 1 < n && isIdentStart(bytes[i + 1]) {
                i += 1
                let s = i
                while i < n && isIdentChar(bytes[i]) { i += 1 }
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
            let two = i + 1 < n ? text(i, i + 2) : ""
            if ["<>", "!=", "<=", ">=", "==", "||", "::"].contains(two) {
                out.append(Token(kind: .symbol, text: two, offset: start))
                i += 2
                continue
            }
            if "(),.*=<>;+-/%".utf8.contains(c) {
                out.append(Token(kind: .symbol, text: text(i, i + 1), offset: start))
                i += 1
                continue
            }
            // `?` (positional markers) and anything else is a syntax error at that character.
            throw Parser.syntaxError(sql: sql, offset: start, near: text(i, i + 1), bytes: bytes)
        }
        out.append(Token(kind: .end, text: "", offset: n))
        return out
    }

    private func text(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<min(b, bytes.count)], as: UTF8.self) }
}
