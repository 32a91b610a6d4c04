import Foundation

/// A typed value while evaluating WHERE and ORDER BY.
enum Value: Sendable, Equatable {
    case null
    case string(String)
    case number(Double)
    case bool(Bool)
    /// Milliseconds since the epoch.
    case timestamp(Int64)

    var isNull: Bool { self == .null }

    /// Interprets JSON_ARRAY text of a column of `type`.
    init(text: String?, type: SQLType) {
        guard let text else {
            self = .null
            return
        }
        if type.isNumeric, let d = Double(text) {
            self = .number(d)
        } else if type.name == "BOOLEAN" {
            self = .bool(text.lowercased() == "true")
        } else if type.isTimestamp, let ms = try? Timestamp.parseMillis(text) {
            self = .timestamp(ms)
        } else {
            self = .string(text)
        }
    }

    /// SQL comparison with implicit casts; nil when either side is NULL.
    static func compare(_ a: Value, _ b: Value) throws(SQLError) -> Int? {
        switch (a, b) {
        case (.null, _), (_, .null): return nil
        case (.number(let x), .number(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.string(let x), .string(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        case (.timestamp(let x), .timestamp(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.number, .string(let s)):
            guard let d = Double(s.trimmingCharacters(in: .whitespaces)) else { throw castError(s, "DOUBLE") }
            return try compare(a, .number(d))
        case (.string, .number): return try compare(b, a).map { -$0 }
        case (.timestamp, .string(let s)):
            guard let ms = try? Timestamp.parseMillis(s) else { throw castError(s, "TIMESTAMP") }
            return try compare(a, .timestamp(ms))
        case (.string, .timestamp): return try compare(b, a).map { -$0 }
        case (.bool, .string(let s)):
            switch s.lowercased() {
            case "true": return try compare(a, .bool(true))
            case "false": return try compare(a, .bool(false))
            default: throw castError(s, "BOOLEAN")
            }
        case (.string, .bool): return try compare(b, a).map { -$0 }
        default:
            throw SQLError(
                "DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES", "42K09",
                "Cannot resolve comparison due to data type mismatch: the left and right operands have different types.")
        }
    }

    static func castError(_ s: String, _ type: String) -> SQLError {
        SQLError(
            "CAST_INVALID_INPUT", "22018",
            "The value '\(s)' of the type \"STRING\" cannot be cast to \"\(type)\" because it is malformed. Correct the value as per the syntax, or change its target type. Use `try_cast` to tolerate malformed input and return NULL instead.")
    }
}

/// A bound named parameter of the request.
struct BoundParameter: Sendable {
    var value: String?
    /// Upper-cased type, default STRING.
    var type: String

    var sqlValue: Value {
        guard let value else { return .null }
        let base = type.split(separator: "(").first.map(String.init) ?? type
        switch base {
        case "INT", "INTEGER", "BIGINT", "LONG", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL", "DEC", "NUMERIC":
            if let d = Double(value) { return .number(d) }
            return .string(value)
        case "BOOLEAN": return .bool(value.lowercased() == "true")
        case "TIMESTAMP", "TIMESTAMP_NTZ":
            if let ms = try? Timestamp.parseMillis(value) { return .timestamp(ms) }
            return .string(value)
        default: return .string(value)
        }
    }
}

/// SQL LIKE with `%` and `_` (and `\` escapes), case-sensitive as in Spark.
func sqlLike(_ text: String, _ pattern: String) -> Bool {
    let t = Array(text.unicodeScalars)
    let p = Array(pattern.unicodeScalars)
    func match(_ i: Int, _ j: Int) -> Bool {
        var i = i, j = j
        while j < p.count {
            let c = p[j]
            if c == "%" {
                while j < p.count && p[j] == "%" { j += 1 }
                if j == p.count { return true }
                for k in i...t.count where match(k, j) { return true }
                return false
            }
            if i >= t.count { return false }
            if c == "_" {
                i += 1
                j += 1
                continue
            }
            var lit = c
            if c == "\\" && j + 1 < p.count {
                j += 1
                lit = p[j]
            }
            if t[i] != lit { return false }
            i += 1
            j += 1
        }
        return i == t.count
    }
    return match(0, 0)
}

/// SHOW ... LIKE patterns: `*` any characters, `|` alternatives, case-insensitive.
func showLike(_ text: String, _ pattern: String) -> Bool {
    let lower = text.lowercased()
    for alt in pattern.lowercased().split(separator: "|", omittingEmptySubsequences: false) {
        let sqlPattern = alt.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "*", with: "%")
        if sqlLike(lower, sqlPattern) { return true }
    }
    return false
}
