/// A typed SQL value converted from its `JSON_ARRAY` text form.
///
/// Conversion is driven by ``ColumnInfo/typeName`` (falling back to ``ColumnInfo/typeText``) in
/// ``decode(text:column:options:)``. Numbers never pass through `Double` unless the column is DOUBLE/FLOAT.
public enum SQLValue: Sendable, Hashable {
    /// SQL NULL (JSON `null`), for any column type.
    case null
    /// STRING, CHAR, VARCHAR.
    case string(String)
    /// TINYINT/BYTE, SMALLINT/SHORT, INT, BIGINT/LONG.
    case int(Int64)
    /// DECIMAL(p,s), exact.
    case decimal(ExactDecimal)
    /// DOUBLE/FLOAT, including NaN and ±Infinity.
    case double(Double)
    /// BOOLEAN.
    case bool(Bool)
    /// DATE (proleptic Gregorian).
    case date(year: Int, month: Int, day: Int)
    /// TIMESTAMP: an instant as microseconds since 1970-01-01T00:00:00Z, plus the offset the text carried
    /// (`Z` → 0, `-08:00` → -28800; nil when the text had no offset and was read as UTC).
    case timestamp(epochMicros: Int64, offsetSeconds: Int?)
    /// TIMESTAMP_NTZ: wall-clock time as microseconds since 1970-01-01T00:00:00 (no time zone).
    case timestampNTZ(epochMicros: Int64)
    /// BINARY, decoded from base64 or hex (see ``SQLValue/DecodingOptions/BinaryEncoding``).
    case binary([UInt8])
    /// ARRAY, MAP, STRUCT, VARIANT: the JSON text as sent.
    case json(String)
    /// INTERVAL, USER_DEFINED_TYPE and unknown types: the text as sent.
    case other(typeName: String, text: String)

    /// Options for ``SQLValue/decode(text:column:options:)``.
    public struct DecodingOptions: Sendable, Hashable {
        /// How BINARY values are encoded in the text.
        public enum BinaryEncoding: Sendable, Hashable {
            /// Base64 when the text is valid padded base64, otherwise hex (a `0x` prefix forces hex).
            case automatic
            /// Standard base64 with padding.
            case base64
            /// Hexadecimal digits, optionally prefixed with `0x`.
            case hex
        }

        /// How BINARY text is encoded.
        public var binaryEncoding: BinaryEncoding

        /// Creates options; the default accepts base64 or hex BINARY text.
        public init(binaryEncoding: BinaryEncoding = .automatic) {
            self.binaryEncoding = binaryEncoding
        }
    }

    /// Converts one JSON_ARRAY value to a typed value for `column`.
    ///
    /// - Parameters:
    ///   - text: The value (nil for JSON `null`).
    ///   - column: The column it belongs to.
    ///   - options: Conversion options.
    /// - Throws: ``SQLValueError`` naming the column, its type and the value when the text does not parse.
    public static func decode(text: String?, column: ColumnInfo, options: DecodingOptions = .init()) throws
        -> SQLValue
    {
        guard var text else { return .null }
        return try text.withUTF8 { try decode(utf8: UnsafeRawBufferPointer($0), column: column, options: options) }
    }

    /// Converts one value given as UTF-8 bytes (for example from ``RowView/withValue(_:_:)``); nil means NULL.
    ///
    /// - Throws: ``SQLValueError`` when the bytes do not parse as the column's type.
    public static func decode(utf8: UnsafeRawBufferPointer?, column: ColumnInfo, options: DecodingOptions = .init())
        throws -> SQLValue
    {
        guard let b = utf8 else { return .null }
        let kind = ValueKind(column: column)
        func failure(_ reason: String) -> SQLValueError {
            let typeText = column.typeText.isEmpty ? column.typeName.rawValue : column.typeText
            return SQLValueError(column: column.name, typeText: typeText, text: String(decoding: b, as: UTF8.self),
                                 reason: reason)
        }
        switch kind {
        case .string:
            return .string(String(decoding: b, as: UTF8.self))
        case .int(let min, let max):
            guard let v = SQLTextParsing.int64(b) else { throw failure("not a base-10 integer") }
            guard v >= min && v <= max else { throw failure("out of range \(min)...\(max)") }
            return .int(v)
        case .decimal:
            guard let d = ExactDecimal.parse(b) else { throw failure("not a decimal number") }
            if let p = column.typePrecision, let s = column.typeScale, let r = d.rescaled(to: max(s, 0)) {
                let digits = String(r.significand.magnitude).count
                if digits > p && r.significand != 0 { throw failure("more than \(p) digits") }
            }
            return .decimal(d)
        case .double:
            guard let d = SQLTextParsing.double(b) else { throw failure("not a floating-point number") }
            return .double(d)
        case .bool:
            guard let v = SQLTextParsing.bool(b) else { throw failure("not true or false") }
            return .bool(v)
        case .date:
            guard let (y, m, d) = SQLTextParsing.date(b) else { throw failure("not a date (YYYY-MM-DD)") }
            return .date(year: y, month: m, day: d)
        case .timestamp:
            guard let (micros, offset) = SQLTextParsing.timestamp(b, allowOffset: true) else {
                throw failure("not an ISO-8601 timestamp (YYYY-MM-DDTHH:MM:SS[.f…][Z|±HH:MM])")
            }
            return .timestamp(epochMicros: micros, offsetSeconds: offset)
        case .timestampNTZ:
            guard let (micros, _) = SQLTextParsing.timestamp(b, allowOffset: false) else {
                throw failure("not an ISO-8601 local timestamp (YYYY-MM-DDTHH:MM:SS[.f…], no offset)")
            }
            return .timestampNTZ(epochMicros: micros)
        case .binary:
            guard let bytes = SQLTextParsing.binary(b, encoding: options.binaryEncoding) else {
                let expected = switch options.binaryEncoding {
                case .hex: "hex"
                case .base64: "base64"
                case .automatic: "base64 or hex"
                }
                throw failure("not \(expected)")
            }
            return .binary(bytes)
        case .json:
            return .json(String(decoding: b, as: UTF8.self))
        case .other:
            return .other(typeName: column.typeName.rawValue, text: String(decoding: b, as: UTF8.self))
        }
    }

    /// Whether this is ``null``.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

/// A JSON_ARRAY value that does not parse as its column's type.
public struct SQLValueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The column name.
    public var column: String
    /// The column's SQL type text.
    public var typeText: String
    /// The offending value.
    public var text: String
    /// Why it was rejected.
    public var reason: String

    /// Creates an error value.
    public init(column: String, typeText: String, text: String, reason: String) {
        self.column = column
        self.typeText = typeText
        self.text = text
        self.reason = reason
    }

    public var description: String {
        let shown = text.count > 80 ? String(text.prefix(80)) + "…" : text
        return "column \"\(column)\" (\(typeText)): cannot convert \"\(shown)\": \(reason)"
    }
}

extension RowView {
    /// Field `i` converted for `column`; see ``SQLValue/decode(utf8:column:options:)``.
    public func value(_ i: Int, column: ColumnInfo, options: SQLValue.DecodingOptions = .init()) throws -> SQLValue {
        if isNull(i) { return .null }
        return try withValue(i) { try SQLValue.decode(utf8: $0, column: column, options: options) } ?? .null
    }
}

/// How a column's values are converted, resolved once from its type.
enum ValueKind: Sendable, Hashable {
    case string, int(min: Int64, max: Int64), decimal, double, bool, date, timestamp, timestampNTZ, binary, json, other

    init(column: ColumnInfo) {
        if let k = ValueKind(name: column.typeName.rawValue.uppercased()) {
            self = k
            return
        }
        // Fall back to the type text's leading word: "DECIMAL(10,2)", "VARCHAR(5)", "ARRAY<INT>".
        let head = String(column.typeText.uppercased().prefix { $0.isLetter || $0.isNumber || $0 == "_" })
        self = ValueKind(name: head) ?? .other
    }

    init?(name: String) {
        switch name {
        case "STRING", "CHAR", "VARCHAR": self = .string
        case "BYTE", "TINYINT": self = .int(min: Int64(Int8.min), max: Int64(Int8.max))
        case "SHORT", "SMALLINT": self = .int(min: Int64(Int16.min), max: Int64(Int16.max))
        case "INT", "INTEGER": self = .int(min: Int64(Int32.min), max: Int64(Int32.max))
        case "LONG", "BIGINT": self = .int(min: .min, max: .max)
        case "DECIMAL", "DEC", "NUMERIC": self = .decimal
        case "DOUBLE", "FLOAT", "REAL": self = .double
        case "BOOLEAN": self = .bool
        case "DATE": self = .date
        case "TIMESTAMP", "TIMESTAMP_LTZ": self = .timestamp
        case "TIMESTAMP_NTZ": self = .timestampNTZ
        case "BINARY": self = .binary
        case "ARRAY", "MAP", "STRUCT", "VARIANT", "OBJECT": self = .json
        case "INTERVAL", "USER_DEFINED_TYPE", "NULL", "VOID": self = .other
        default: return nil
        }
    }
}
