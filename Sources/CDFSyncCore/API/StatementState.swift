/// `status.state` of a statement. An open set: unknown states decode and keep their text.
public struct StatementState: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    /// The state as the server spells it.
    public var rawValue: String

    /// Wraps a state or type name exactly as sent.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Queued, or waiting for the warehouse to start.
    public static let pending = StatementState(rawValue: "PENDING")
    /// Executing.
    public static let running = StatementState(rawValue: "RUNNING")
    /// Finished; manifest and result are available.
    public static let succeeded = StatementState(rawValue: "SUCCEEDED")
    /// Failed; see `status.error`.
    public static let failed = StatementState(rawValue: "FAILED")
    /// Cancelled (note the single L, unlike the `CANCELLED` error code).
    public static let canceled = StatementState(rawValue: "CANCELED")
    /// Finished and closed; the result can no longer be fetched (unless it came with this response).
    public static let closed = StatementState(rawValue: "CLOSED")

    /// Whether polling should stop: SUCCEEDED, FAILED, CANCELED or CLOSED.
    public var isTerminal: Bool {
        self == .succeeded || self == .failed || self == .canceled || self == .closed
    }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { rawValue }
}

/// A column's `type_name`. An open set: the server sends names outside the SDK enum (`TIMESTAMP_NTZ`, `VARIANT`).
public struct SQLTypeName: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    /// The name as the server spells it.
    public var rawValue: String

    /// Wraps a state or type name exactly as sent.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Known names (the SDK enum plus names seen in traffic); any other name is kept as sent.
    public static let array = SQLTypeName(rawValue: "ARRAY")
    public static let binary = SQLTypeName(rawValue: "BINARY")
    public static let boolean = SQLTypeName(rawValue: "BOOLEAN")
    public static let byte = SQLTypeName(rawValue: "BYTE")
    public static let char = SQLTypeName(rawValue: "CHAR")
    public static let date = SQLTypeName(rawValue: "DATE")
    public static let decimal = SQLTypeName(rawValue: "DECIMAL")
    public static let double = SQLTypeName(rawValue: "DOUBLE")
    public static let float = SQLTypeName(rawValue: "FLOAT")
    public static let int = SQLTypeName(rawValue: "INT")
    public static let interval = SQLTypeName(rawValue: "INTERVAL")
    public static let long = SQLTypeName(rawValue: "LONG")
    public static let map = SQLTypeName(rawValue: "MAP")
    /// `VOID` columns (always NULL).
    public static let null = SQLTypeName(rawValue: "NULL")
    public static let short = SQLTypeName(rawValue: "SHORT")
    public static let string = SQLTypeName(rawValue: "STRING")
    public static let `struct` = SQLTypeName(rawValue: "STRUCT")
    public static let timestamp = SQLTypeName(rawValue: "TIMESTAMP")
    public static let timestampNTZ = SQLTypeName(rawValue: "TIMESTAMP_NTZ")
    public static let userDefinedType = SQLTypeName(rawValue: "USER_DEFINED_TYPE")
    public static let variant = SQLTypeName(rawValue: "VARIANT")

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { rawValue }
}
