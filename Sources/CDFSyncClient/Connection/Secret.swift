/// A credential that never shows itself: `description`, `debugDescription` and string interpolation
/// all print `<redacted>`. Read the value only where it goes on the wire.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    private let storage: String

    public init(_ value: String) { storage = value }

    /// The secret text, for building an `Authorization` header or a token request.
    public func reveal() -> String { storage }

    public var isEmpty: Bool { storage.isEmpty }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "Secret(<redacted>)" }
}
