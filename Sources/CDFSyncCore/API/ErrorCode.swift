/// An `error_code` as the API sends it: a string (`"BAD_REQUEST"`, `"NOT_FOUND"`) or, for auth failures, a
/// number (`401`, `403`).
public enum ErrorCode: Codable, Sendable, Hashable, CustomStringConvertible {
    /// A symbolic code such as `"RESOURCE_EXHAUSTED"`.
    case string(String)
    /// A numeric code such as `403`.
    case number(Int)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let n = try? c.decode(Int.self) {
            self = .number(n)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "error_code must be a string or an integer")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let n): try c.encode(n)
        }
    }

    /// The code as text: the string itself, or the decimal number.
    public var description: String {
        switch self {
        case .string(let s): s
        case .number(let n): String(n)
        }
    }

    /// The symbolic code, or nil for a numeric code.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The numeric code, or nil for a symbolic code.
    public var numberValue: Int? {
        if case .number(let n) = self { return n }
        return nil
    }
}
