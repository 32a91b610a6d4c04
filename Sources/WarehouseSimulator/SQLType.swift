import Foundation

/// A Databricks SQL type as written in `type_text`, with the manifest's `type_name` mapping (spec §2.1).
public struct SQLType: Sendable, Hashable {
    /// Normalised type text, e.g. `BIGINT`, `DECIMAL(10,2)`, `MAP<STRING, STRING>`.
    public var text: String
    /// The manifest `type_name`: `LONG` for BIGINT, `DECIMAL` for DECIMAL(p,s), and so on.
    public var name: String
    public var precision: Int?
    public var scale: Int?
    public var intervalType: String?

    public init(parsing raw: String) throws {
        let t = raw.trimmingCharacters(in: .whitespaces)
        let upper = t.uppercased()
        func base(_ s: String) -> String {
            if let i = s.firstIndex(where: { $0 == "<" || $0 == "(" }) { return String(s[..<i]).trimmingCharacters(in: .whitespaces) }
            return s
        }
        let b = base(upper)
        precision = nil
        scale = nil
        intervalType = nil
        switch b {
        case "INT", "INTEGER": text = "INT"; name = "INT"
        case "BIGINT", "LONG": text = "BIGINT"; name = "LONG"
        case "SMALLINT", "SHORT": text = "SMALLINT"; name = "SHORT"
        case "TINYINT", "BYTE": text = "TINYINT"; name = "BYTE"
        case "DOUBLE": text = "DOUBLE"; name = "DOUBLE"
        case "FLOAT", "REAL": text = "FLOAT"; name = "FLOAT"
        case "STRING": text = "STRING"; name = "STRING"
        case "BOOLEAN": text = "BOOLEAN"; name = "BOOLEAN"
        case "DATE": text = "DATE"; name = "DATE"
        case "TIMESTAMP": text = "TIMESTAMP"; name = "TIMESTAMP"
        case "TIMESTAMP_NTZ": text = "TIMESTAMP_NTZ"; name = "TIMESTAMP_NTZ"
        case "BINARY": text = "BINARY"; name = "BINARY"
        case "VOID": text = "VOID"; name = "NULL"
        case "VARIANT": text = "VARIANT"; name = "VARIANT"
        case "DECIMAL", "DEC", "NUMERIC":
            var p = 10, s = 0
            if let open = upper.firstIndex(of: "("), let close = upper.lastIndex(of: ")"), open < close {
                let inner = upper[upper.index(after: open)..<close].split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                guard inner.count >= 1, inner.count <= 2, let pp = Int(inner[0]),
                    inner.count == 1 || Int(inner[1]) != nil
                else { throw WorkspaceError("invalid type \"\(raw)\"") }
                p = pp
                s = inner.count == 2 ? Int(inner[1])! : 0
            }
            guard p >= 1, p <= 38, s >= 0, s <= p else { throw WorkspaceError("invalid type \"\(raw)\"") }
            text = "DECIMAL(\(p),\(s))"
            name = "DECIMAL"
            precision = p
            scale = s
        case "ARRAY", "MAP", "STRUCT":
            guard upper.hasSuffix(">") else { throw WorkspaceError("invalid type \"\(raw)\"") }
            text = t  // keep the nested text as written
            name = b
        case _ where b.hasPrefix("INTERVAL"):
            text = upper
            name = "INTERVAL"
            intervalType = String(upper.dropFirst("INTERVAL".count)).trimmingCharacters(in: .whitespaces)
        case _ where b.hasPrefix("CHAR") || b.hasPrefix("VARCHAR"):
            text = upper
            name = "STRING"
        default:
            throw WorkspaceError("unsupported type \"\(raw)\"")
        }
    }

    var isIntegral: Bool { ["INT", "LONG", "SHORT", "BYTE"].contains(name) }
    var isNumeric: Bool { isIntegral || ["DOUBLE", "FLOAT", "DECIMAL"].contains(name) }
    var isTimestamp: Bool { name == "TIMESTAMP" || name == "TIMESTAMP_NTZ" }

    static let string = try! SQLType(parsing: "STRING")
    static let bigint = try! SQLType(parsing: "BIGINT")
    static let int = try! SQLType(parsing: "INT")
    static let boolean = try! SQLType(parsing: "BOOLEAN")
    static let timestamp = try! SQLType(parsing: "TIMESTAMP")
    static let mapStringString = try! SQLType(parsing: "MAP<STRING, STRING>")
}

/// Millisecond UTC timestamps in the JSON_ARRAY text form `yyyy-MM-ddTHH:mm:ss.SSSZ`.
public enum Timestamp {
    /// Parses ISO-8601 (`T` or space separator, optional fraction, `Z`, `±HH:MM` or no zone = UTC)
    /// and a bare date, into milliseconds since the epoch.
    public static func parseMillis(_ text: String) throws -> Int64 {
        let b = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        var i = 0
        func digits(_ n: Int) throws -> Int64 {
            guard i + n <= b.count else { throw WorkspaceError("invalid timestamp \"\(text)\"") }
            var v: Int64 = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48, c <= 57 else { throw WorkspaceError("invalid timestamp \"\(text)\"") }
                v = v * 10 + Int64(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) throws {
            guard i < b.count, b[i] == c else { throw WorkspaceError("invalid timestamp \"\(text)\"") }
            i += 1
        }
        let year = try digits(4)
        try expect(UInt8(ascii: "-"))
        let month = try digits(2)
        try expect(UInt8(ascii: "-"))
        let day = try digits(2)
        var hour: Int64 = 0, minute: Int64 = 0, second: Int64 = 0, millis: Int64 = 0
        var offsetMinutes: Int64 = 0
        if i < b.count {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: " ") else {
                throw WorkspaceError("invalid timestamp \"\(text)\"")
            }
            i += 1
            hour = try digits(2)
            try expect(UInt8(ascii: ":"))
            minute = try digits(2)
            if i < b.count, b[i] == UInt8(ascii: ":") {
                i += 1
                second = try digits(2)
            }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                var scale: Int64 = 100
                var any = false
                while i < b.count, b[i] >= 48, b[i] <= 57 {
                    millis += Int64(b[i] - 48) * scale
                    scale /= 10
                    any = true
                    i += 1
                }
                guard any else { throw WorkspaceError("invalid timestamp \"\(text)\"") }
            }
            if i < b.count {
                if b[i] == UInt8(ascii: "Z") {
                    i += 1
                } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                    let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
                    i += 1
                    let oh = try digits(2)
                    if i < b.count, b[i] == UInt8(ascii: ":") { i += 1 }
                    let om = try digits(2)
                    offsetMinutes = sign * (oh * 60 + om)
                }
            }
        }
        guard i == b.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else {
            throw WorkspaceError("invalid timestamp \"\(text)\"")
        }
        let days = daysFromCivil(year, month, day)
        return ((days * 86400 + hour * 3600 + minute * 60 + second) - offsetMinutes * 60) * 1000 + millis
    }

    /// Formats milliseconds since the epoch as `yyyy-MM-ddTHH:mm:ss.SSSZ`.
    public static func format(millis: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(millis: millis, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `yyyy-MM-ddTHH:mm:ss.SSSZ` as bytes.
    static func append(millis: Int64, to out: inout [UInt8]) {
        var ms = millis % 1000
        var secs = millis / 1000
        if ms < 0 {
            ms += 1000
            secs -= 1
        }
        var days = secs / 86400
        var rem = secs % 86400
        if rem < 0 {
            rem += 86400
            days -= 1
        }
        let (y, m, d) = civilFromDays(days)
        func put(_ v: Int64, _ width: Int) {
            var digits = [UInt8](repeating: 48, count: width)
            var x = v
            var k = width - 1
            while k >= 0 {
                digits[k] = UInt8(48 + x % 10)
                x /= 10
                k -= 1
            }
            out.append(contentsOf: digits)
        }
        put(y, 4)
        out.append(UInt8(ascii: "-"))
        put(m, 2)
        out.append(UInt8(ascii: "-"))
        put(d, 2)
        out.append(UInt8(ascii: "T"))
        put(rem / 3600, 2)
        out.append(UInt8(ascii: ":"))
        put(rem / 60 % 60, 2)
        out.append(UInt8(ascii: ":"))
        put(rem % 60, 2)
        out.append(UInt8(ascii: "."))
        put(ms, 3)
        out.append(UInt8(ascii: "Z"))
    }

    /// Normalises any accepted timestamp text to the millisecond `Z` form.
    static func normalize(_ text: String) throws -> String { format(millis: try parseMillis(text)) }

    // Howard Hinnant's civil-date algorithms.
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
